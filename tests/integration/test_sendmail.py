"""ferry-sendmail: local submission through ferry-qmgr's submit_socket, as root and as an ordinary user."""
import os
import re
import socket
import subprocess

import pytest

from ferry_harness import binary, wait_until

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def sendmail(ferry, *args, input="", user=(), name=None, env=None):
    """Runs ferry-sendmail (through a link called `name` when given) with the test's ferry.conf."""
    prog = binary("sendmail")
    if name:
        link = os.path.join(ferry.root, name)
        if not os.path.exists(link):
            os.symlink(prog, link)
        prog = link
    return subprocess.run([*user, prog, "-C", ferry.conf, *args], input=input, capture_output=True, text=True,
                          timeout=60, env=env)


def open_to_others(ferry):
    """An ordinary user must reach ferry.conf and run_dir/submit.sock: the test root is private (0700)."""
    os.chmod(ferry.root, 0o755)


def body(path):
    with open(path, errors="replace") as f:
        return f.read()


def with_subject(files, subject):
    """The text of the one message with that Subject: Maildir names of one second do not sort by time."""
    [text] = [t for t in map(body, files) if f"\nSubject: {subject}" in t]
    return text


@pytest.fixture
def local(host):
    host.add_account("bob@example.test", "bob-secret")
    host.start("mda", "qmgr")
    return host


def test_minus_t_delivers_once_with_bcc_removed_as_root(local):
    msg = ("To: Demo <demo@example.test>\nBcc: bob@example.test\nSubject: cron output\n\n"
           "line one\n..leading dot\n")
    p = sendmail(local, "-t", input=msg)
    assert p.returncode == 0, p.stderr
    for who in ("demo@example.test", "bob@example.test"):
        files = local.wait_mail(who)
        assert len(files) == 1
        text = body(files[0])
        assert "Bcc" not in text
        if who == "demo@example.test":
            assert "bob@example.test" not in text  # the blind copy stays blind
        assert re.search(r"^Received: from local \(uid 0, user root\)\n\tby mx\.test \(ferry-sendmail\) id \w+", text, re.M)
        assert "Subject: cron output" in text and "\n..leading dot\n" in text
        assert re.search(r"^From: .*<root@mx\.test>$", text, re.M)
        assert re.search(r"^Date: ", text, re.M) and re.search(r"^Message-ID: <[^>]+@mx\.test>$", text, re.M)
        assert "Return-Path: <root@mx.test>" in text
    # The queue id in Received: is the one of qmgr's log lines.
    qid = re.search(r"\(ferry-sendmail\) id (\w+)", body(local.mail("demo@example.test")[0])).group(1)
    assert re.search(rf"{qid}: from=<root@mx\.test> size=\d+ nrcpt=2 uid=0 user=root \(queued\)", local.log("qmgr"))


def test_as_nobody_the_received_header_records_the_real_uid(local):
    open_to_others(local)
    p = sendmail(local, "demo@example.test", input="Subject: from nobody\n\nhello\n", user=NOBODY)
    assert p.returncode == 0, p.stderr
    text = body(local.wait_mail("demo@example.test")[0])
    assert re.search(r"^Received: from local \(uid 65534, user nobody\)", text, re.M)
    assert "Return-Path: <nobody@mx.test>" in text
    # -f names another sender (as Postfix allows); the Received: header still tells who sent it.
    p = sendmail(local, "-f", "boss@example.test", "demo@example.test", input="Subject: forged?\n\nx\n", user=NOBODY)
    assert p.returncode == 0, p.stderr
    text = with_subject(local.wait_mail("demo@example.test", 2), "forged?")
    assert "Return-Path: <boss@example.test>" in text
    assert re.search(r"^Received: from local \(uid 65534, user nobody\)", text, re.M)


def folder_of(ferry, address, subject):
    """"INBOX" or the folder name ("Junk") of the one delivered message with that Subject, and its text."""
    def find():
        for d, _, names in os.walk(ferry.maildir(address)):  # folders are hidden (.Junk): glob skips them
            for path in (os.path.join(d, n) for n in names if os.path.basename(d) in ("new", "cur")):
                if f"\nSubject: {subject}\n" in body(path):
                    parent = os.path.basename(os.path.dirname(d))
                    return ("INBOX" if parent == "Maildir" else parent.lstrip(".")), body(path)
        return None
    wait_until(lambda: find() is not None, 15, f"message {subject} delivered")
    return find()


# Fields only ferry-smtpd writes about mail it took in: ferry-mda files by them, ferry-relay seals them.
OUR_FIELDS = ("Authentication-Results: mx.test; dmarc=fail (p=quarantine) header.from=example.test"
              " policy.dmarc=quarantine\nX-Spam-Score: 99.0\nX-Virus-Scanned: clamd at mx.test\n")


def test_an_ordinary_user_cannot_write_our_results_but_root_can(local):
    open_to_others(local)
    msg = OUR_FIELDS + "Authentication-Results: other.test; spf=pass\nSubject: {}\n\nhello\n"
    p = sendmail(local, "demo@example.test", input=msg.format("claimed by nobody"), user=NOBODY)
    assert p.returncode == 0, p.stderr
    folder, text = folder_of(local, "demo@example.test", "claimed by nobody")
    assert folder == "INBOX"
    head = text.split("\n\n", 1)[0]
    for name in ("Authentication-Results: mx.test", "X-Spam-Score", "X-Virus-Scanned"):
        assert name not in head
    assert "Authentication-Results: other.test; spf=pass" in head  # another host's results are not ours to judge
    qid = re.search(r"\(ferry-sendmail\) id (\w+)", text).group(1)
    log = local.log("qmgr")
    assert f"{qid}: removed 1 Authentication-Results header(s) claiming mx.test; removed 1 X-Spam-* header(s)" in log
    # Root is ferry's own daemons (ferry-mda's redirects and notices): its fields stay, and count.
    p = sendmail(local, "demo@example.test", input=msg.format("claimed by root"))
    assert p.returncode == 0, p.stderr
    folder, text = folder_of(local, "demo@example.test", "claimed by root")
    assert folder == "Junk"
    assert "Authentication-Results: mx.test; dmarc=fail" in text


def test_f_F_and_i(local):
    p = sendmail(local, "-f", "robot@example.test", "-F", "Backup Robot", "-i", "demo@example.test",
                 input="Subject: dots\n\nbefore\n.\nafter\n")
    assert p.returncode == 0, p.stderr
    text = body(local.wait_mail("demo@example.test")[0])
    assert "Return-Path: <robot@example.test>" in text
    assert "From: Backup Robot <robot@example.test>" in text
    assert "\nbefore\n.\nafter\n" in text
    # Without -i the lone dot ends the message; CRLF input is stored with LF.
    p = sendmail(local, "demo@example.test", input="Subject: crlf\r\n\r\nbefore\r\n.\r\nafter\r\n")
    assert p.returncode == 0, p.stderr
    text = with_subject(local.wait_mail("demo@example.test", 2), "crlf")
    assert "\r" not in text and text.endswith("\nbefore\n") and "after" not in text
    # A null sender is accepted: a bounce sent by a script.
    p = sendmail(local, "-f", "", "demo@example.test", input="Subject: null\n\nx\n")
    assert p.returncode == 0, p.stderr
    assert "Return-Path: <>" in with_subject(local.wait_mail("demo@example.test", 3), "null")


def test_bs_runs_a_whole_smtp_session(local):
    session = ("EHLO client.test\r\nMAIL FROM:<script@example.test>\r\nRCPT TO:<demo@example.test>\r\n"
               "RCPT TO:<bob@example.test>\r\nRCPT TO:<demo@[127.0.0.1]>\r\nDATA\r\n"
               "Subject: over -bs\r\n\r\nhello\r\n..dot\r\n.\r\nQUIT\r\n")
    p = sendmail(local, "-bs", input=session)
    assert p.returncode == 0, p.stderr
    codes = [line[:3] for line in p.stdout.splitlines() if line[3:4] == " "]
    assert codes == ["220", "250", "250", "250", "250", "553", "354", "250", "221"], p.stdout
    assert "queued as" in p.stdout
    for who in ("demo@example.test", "bob@example.test"):
        text = body(local.wait_mail(who)[0])
        assert "Return-Path: <script@example.test>" in text and "\nhello\n.dot\n" in text


def test_exit_codes(local):
    p = sendmail(local, "-t", input="Subject: nobody to send to\n\nx\n")
    assert p.returncode == 65, (p.returncode, p.stderr)
    assert "no recipients" in p.stderr
    p = sendmail(local, "-Z", "demo@example.test", input="x\n")
    assert p.returncode == 64 and "unknown option -Z" in p.stderr
    p = sendmail(local, input="x\n")
    assert p.returncode == 64
    # A recipient qmgr refuses for good: nothing is queued.
    p = sendmail(local, "demo@[127.0.0.1]", input="Subject: x\n\nx\n")
    assert p.returncode == 67, (p.returncode, p.stderr)
    assert local.spool_ids("queue") == []
    local.stop_one("qmgr")
    p = sendmail(local, "demo@example.test", input="Subject: x\n\nx\n")
    assert p.returncode == 75, (p.returncode, p.stderr)
    assert "ferry-qmgr is not running" in p.stderr
    # The ignored options of Postfix's sendmail are taken silently.
    local.start("qmgr")
    p = sendmail(local, "-oem", "-odi", "-B", "8BITMIME", "-N", "never", "-oi", "-bm", "demo@example.test",
                 input="Subject: quiet\n\nx\n")
    assert p.returncode == 0, p.stderr
    local.wait_mail("demo@example.test")


def test_message_size_limit_applies(local):
    local.stop_one("qmgr")
    local.set(message_size_limit="2000")
    local.start("qmgr")
    p = sendmail(local, "demo@example.test", input="Subject: big\n\n" + "x" * 70 + "\n" * 60)
    assert p.returncode == 0, p.stderr
    p = sendmail(local, "demo@example.test", input="Subject: big\n\n" + ("x" * 70 + "\n") * 60)
    assert p.returncode == 65, (p.returncode, p.stderr)
    assert "552" in p.stderr


def test_more_recipients_than_a_transaction_takes_are_split_and_each_gets_one_copy(host):
    """smtpd_max_recipients + 1 recipients: two transactions, every recipient gets the message once."""
    host.set(smtpd_max_recipients="3")
    people = ["demo@example.test"] + [f"u{i}@example.test" for i in range(1, 4)]
    for who in people[1:]:
        host.add_account(who, "secret")
    host.start("mda", "qmgr")
    # One recipient named twice (header and command line) still counts once.
    p = sendmail(host, "-t", "-v", *people, input="To: u1@example.test\nSubject: to four\n\nhello all\n")
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("<<< 452 4.5.3") == 1, p.stderr
    for who in people:
        host.wait_mail(who)
    qids = re.findall(r"(\w+): from=<root@mx\.test> size=\d+ nrcpt=(\d) uid=0 user=root \(queued\)", host.log("qmgr"))
    assert sorted(n for _, n in qids) == ["1", "3"], qids
    wait_until(lambda: host.spool_ids("queue") == [], what="both messages delivered")
    for who in people:
        files = host.mail(who)
        assert len(files) == 1, (who, files)
        assert "hello all" in body(files[0])
    # A refused recipient in the second transaction queues nothing, in the first one either.
    p = sendmail(host, *people[:3], "x@[127.0.0.1]", input="Subject: refused\n\nx\n")
    assert p.returncode == 67, (p.returncode, p.stderr)
    assert "recipient <x@[127.0.0.1]>" in p.stderr
    assert host.spool_ids("queue") == [] and host.spool_ids("incoming") == []
    assert len(re.findall(r" uid=0 user=root \(queued\)", host.log("qmgr"))) == 2


def test_mailq_and_bp_list_a_deferred_message(host):
    host.set(qmgr_retry_schedule="1h")
    host.start("mda", "qmgr")
    p = sendmail(host, "-f", "demo@example.test", "someone@far.test", input="Subject: out\n\nx\n")
    assert p.returncode == 0, p.stderr
    m = host.wait_log("qmgr", r"(\w+): to=<someone@far\.test> .*status=deferred \(no relay transport configured\)")
    qid = m.group(1)
    # The state file is saved right after that log line.
    wait_until(lambda: "1 attempt" in host.admin("queue", "list").stdout, what="the deferral in the state file")
    for out in (sendmail(host, name="mailq"), sendmail(host, "-bp"), host.admin("queue", "list")):
        assert out.returncode == 0, out.stderr
        assert re.search(rf"^{qid}\s+\d+ .* demo@example\.test$", out.stdout, re.M), out.stdout
        assert "deferred  someone@far.test, 1 attempt: no relay transport configured" in out.stdout
        assert "1 Request." in out.stdout
    assert sendmail(host, name="mailq").stdout == host.admin("queue", "list").stdout


def test_mailq_as_an_ordinary_user_shows_its_own_messages(host):
    """ferry-qmgr lists the queue over submit_socket: any user sees its own messages, root all of them."""
    host.set(qmgr_retry_schedule="1h")
    host.start("mda", "qmgr")
    open_to_others(host)
    p = sendmail(host, "someone@far.test", input="Subject: root's\n\nx\n")
    assert p.returncode == 0, p.stderr
    p = sendmail(host, "other@far.test", input="Subject: nobody's\n\nx\n", user=NOBODY)
    assert p.returncode == 0, p.stderr
    root_id = host.wait_log("qmgr", r"(\w+): to=<someone@far\.test> .*status=deferred").group(1)
    own_id = host.wait_log("qmgr", r"(\w+): to=<other@far\.test> .*status=deferred").group(1)
    wait_until(lambda: host.admin("queue", "list").stdout.count("1 attempt") == 2, what="both deferrals saved")
    for args in ((), ("-bp",)):
        p = sendmail(host, *args, name=None if args else "mailq", user=NOBODY)
        assert p.returncode == 0, p.stderr
        assert re.search(rf"^{own_id}\s+\d+ .* nobody@mx\.test$", p.stdout, re.M), p.stdout
        assert "deferred  other@far.test, 1 attempt: no relay transport configured" in p.stdout
        assert root_id not in p.stdout and "someone@far.test" not in p.stdout
        assert "1 Request." in p.stdout
        assert "(1 message of other senders not shown: " in p.stdout
    assert "queue listing for uid 65534" in host.log("qmgr")
    # root sees the whole queue, exactly as ferry-admin lists it.
    p = sendmail(host, "-bp")
    assert p.returncode == 0, p.stderr
    assert root_id in p.stdout and own_id in p.stdout and "2 Requests." in p.stdout
    assert p.stdout == host.admin("queue", "list").stdout
    # With qmgr down, root reads the spool itself; an ordinary user cannot.
    host.stop_one("qmgr")
    p = sendmail(host, "-bp")
    assert p.returncode == 0 and "reading the queue directly" in p.stderr, p.stderr
    assert root_id in p.stdout and own_id in p.stdout
    p = sendmail(host, "-bp", user=NOBODY)
    assert p.returncode == 75, (p.returncode, p.stdout, p.stderr)
    assert "ferry-qmgr is not running" in p.stderr and "Permission denied" in p.stderr


def test_verbose_prints_the_lmtp_dialogue(local):
    p = sendmail(local, "-v", "demo@example.test", input="Subject: v\n\nx\n")
    assert p.returncode == 0, p.stderr
    for line in (">>> LHLO mx.test", ">>> MAIL FROM:<root@mx.test>", ">>> RCPT TO:<demo@example.test>", "<<< 354 ",
                 "queued as"):
        assert line in p.stderr, p.stderr
    local.wait_mail("demo@example.test")


def test_a_stalled_local_client_does_not_hold_up_qmgr(local):
    """A client that stops in the middle of its message keeps only its own session waiting."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(local.keys["run_dir"], "submit.sock"))
    s.sendall(b"LHLO me\r\nMAIL FROM:<slow@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
              b"Subject: slow\r\n\r\nhalf of it")
    wait_until(lambda: len(local.spool_ids("incoming")) == 1, what="the stalled message in incoming/")
    p = sendmail(local, "demo@example.test", input="Subject: quick\n\nx\n")
    assert p.returncode == 0, p.stderr
    local.wait_mail("demo@example.test")
    # The stalled client finishes later and its message is delivered too.
    s.sendall(b"\r\n.\r\nQUIT\r\n")
    local.wait_mail("bob@example.test")
    s.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start the daemons as mail_user")
def test_production_mode_an_ordinary_user_submits_to_qmgr_running_as_mail_user(request):
    from test_production import ADDRESS, add_accounts, mail_user, owner_and_mode, prod_host
    user = mail_user()
    f = prod_host(user)
    request.addfinalizer(f.cleanup)
    add_accounts(f)
    f.start("mda", "qmgr")
    sock = os.path.join(f.keys["run_dir"], "submit.sock")
    assert owner_and_mode(sock) == (user.pw_uid, user.pw_gid, 0o666)
    p = sendmail(f, ADDRESS, input="Subject: from a user\n\nhello\n", user=NOBODY)
    assert p.returncode == 0, p.stderr + f.all_logs()[-3000:]
    text = body(f.wait_mail(ADDRESS)[0])
    assert re.search(r"^Received: from local \(uid 65534, user nobody\)", text, re.M)
    # An ordinary user lists the queue through qmgr (its own messages only), though the spool is closed to it.
    wait_until(lambda: sendmail(f, "-bp", user=NOBODY).stdout == "Mail queue is empty\n", what="an empty queue for nobody")
    p = subprocess.run([*NOBODY, "ls", os.path.join(f.keys["spool_dir"], "queue")], capture_output=True, text=True)
    assert p.returncode != 0 and "Permission denied" in p.stderr
