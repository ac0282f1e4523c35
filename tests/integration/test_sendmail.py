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


def by_subject(paths, subject):
    """The stored message with this Subject: Maildir names sort by time only to the second."""
    texts = [body(p) for p in paths if f"\nSubject: {subject}\n" in body(p)]
    assert len(texts) == 1, f"{len(texts)} messages with Subject: {subject}"
    return texts[0]


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
    text = by_subject(local.wait_mail("demo@example.test", 2), "forged?")
    assert "Return-Path: <boss@example.test>" in text
    assert re.search(r"^Received: from local \(uid 65534, user nobody\)", text, re.M)


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
    text = by_subject(local.wait_mail("demo@example.test", 2), "crlf")
    assert "\r" not in text and text.endswith("\nbefore\n") and "after" not in text
    # A null sender is accepted: a bounce sent by a script.
    p = sendmail(local, "-f", "", "demo@example.test", input="Subject: null\n\nx\n")
    assert p.returncode == 0, p.stderr
    assert "Return-Path: <>" in by_subject(local.wait_mail("demo@example.test", 3), "null")


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
    # The queue is the administrator's: an ordinary user cannot list it.
    p = sendmail(f, "-bp", user=NOBODY)
    assert p.returncode == 75 and "Permission denied" in p.stderr
