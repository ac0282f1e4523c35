"""ferry-smtpd with real clients (swaks, smtplib, curl, raw sockets): delivery, policy, smuggling, limits."""
import base64
import os
import re
import smtplib
import subprocess
import time
import uuid

import pytest

from ferry_harness import SmtpClient, binary, wait_until

DEMO = "demo@example.test"


@pytest.fixture
def full(host):
    """The whole pipeline: mda, qmgr and smtpd."""
    host.start("mda", "qmgr", "smtpd")
    return host


def client(f, timeout=30):
    """A raw SMTP client to the smtp listener."""
    return SmtpClient(f.port("smtp"), timeout)


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def start_transaction(c, rcpt=DEMO):
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<sender@outside.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
    assert c.cmd("DATA")[0] == 354


# --- delivery with real clients -------------------------------------------------------------

def message_lf(tok):
    """A message with LF line ends, with lines that need dot-stuffing and 8-bit text."""
    return (f"From: Sender <sender@outside.test>\nTo: {DEMO}\nSubject: test {tok}\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            f"Hello {tok}.\n.leading dot\n..two dots\n.\n \u00e9t\u00e9 caf\u00e9\n\ttab line\nlast line\n").encode()


def check_delivered(f, tok, expected_lf, sender="sender@outside.test"):
    files = f.wait_mail(DEMO, 1)
    hits = [p for p in files if tok.encode() in read(p)]
    assert len(hits) == 1, files
    data = read(hits[0])
    assert data.endswith(expected_lf), data[-400:]
    head = data[:len(data) - len(expected_lf)]
    assert b"\r" not in data
    assert re.search(rb"^Return-Path: <" + re.escape(sender.encode()) + rb">$", head, re.M), head
    assert re.search(rb"^Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\n\tby mx\.test \(ferry\) with E?SMTP id [0-9A-F]+\n"
                     rb"\tfor <demo@example\.test>; \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$", head, re.M), head
    return data


def test_swaks_delivers_byte_exact(full):
    tok = uuid.uuid4().hex
    msg = message_lf(tok)
    path = os.path.join(full.root, "msg.eml")
    with open(path, "wb") as fh:
        fh.write(msg[:-1])  # swaks ends the data with CRLF "." CRLF itself
    p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(full.port("smtp")),
                        "--helo", "client.test", "--from", "sender@outside.test", "--to", DEMO,
                        "--data", "@" + path, "--timeout", "20"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"<-  250 2\.0\.0 Ok: queued as [0-9A-F]{16}", p.stdout), p.stdout
    check_delivered(full, tok, msg)
    full.wait_log("smtpd", r"[0-9A-F]{16}: from=<sender@outside\.test> size=\d+ nrcpt=1 client=\[127\.0\.0\.1\]")
    full.wait_log("smtpd", r"connect from \[127\.0\.0\.1\]")
    full.wait_log("smtpd", r"disconnect from \[127\.0\.0\.1\]")


def test_smtplib_delivers_byte_exact(full):
    tok = uuid.uuid4().hex
    msg = message_lf(tok)
    with smtplib.SMTP("127.0.0.1", full.port("smtp"), local_hostname="client.test", timeout=30) as s:
        code, caps = s.ehlo()
        assert code == 250
        for ext in ("pipelining", "8bitmime", "size", "enhancedstatuscodes"):
            assert s.has_extn(ext), caps
        assert s.esmtp_features["size"] == "10240000"
        refused = s.sendmail("sender@outside.test", [DEMO], msg.replace(b"\n", b"\r\n"),
                             mail_options=["BODY=8BITMIME"])
        assert refused == {}
    check_delivered(full, tok, msg)


def test_curl_delivers(full):
    tok = uuid.uuid4().hex
    msg = message_lf(tok)
    path = os.path.join(full.root, "curl.eml")
    with open(path, "wb") as fh:
        fh.write(msg.replace(b"\n", b"\r\n"))
    p = subprocess.run(["curl", "-sS", "--max-time", "30", f"smtp://127.0.0.1:{full.port('smtp')}/client.test",
                        "--mail-from", "sender@outside.test", "--mail-rcpt", DEMO, "--upload-file", path],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    check_delivered(full, tok, msg)


def test_null_sender_and_quoted_local_part_in_mail(full):
    tok = uuid.uuid4().hex
    c = client(full)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<>")[0] == 250
    assert c.cmd("RCPT TO:<\"demo\"@Example.TEST>")[0] == 250  # quoted dot-string, domain case
    assert c.cmd("DATA")[0] == 354
    c.send(f"Subject: bounce {tok}\r\n\r\nbody\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT")
    data = read(full.wait_mail(DEMO, 1)[0])
    assert tok.encode() in data
    assert re.search(rb"^Return-Path: <>$", data, re.M), data[:300]


# --- pipelining and the queue file ----------------------------------------------------------

def test_pipelining_all_in_one_write(host):
    host.start("smtpd")  # alone: the message stays in the spool's queue/
    c = client(host)
    assert c.banner[0] == 220 and "mx.test" in c.banner[1][0]
    c.send("EHLO client.test\r\nMAIL FROM:<sender@outside.test> SIZE=60\r\n"
           f"RCPT TO:<{DEMO}>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<x@elsewhere.test>\r\n"
           "NOOP\r\nDATA\r\nSubject: pipelined\r\n\r\n..dot\r\nbody\r\n.\r\n"
           "RSET\r\nVRFY demo\r\nHELP\r\nQUIT\r\n")
    replies = [c.reply() for _ in range(12)]
    codes = [r[0] for r in replies]
    assert codes == [250, 250, 250, 550, 554, 250, 354, 250, 250, 252, 214, 221], replies
    assert "PIPELINING" in replies[0][1] and "SIZE 10240000" in replies[0][1]
    assert replies[3][1][0].startswith("5.1.1 <nobody@example.test>")
    assert replies[4][1][0].startswith("5.7.1 <x@elsewhere.test>: Relay access denied")
    qid = re.match(r"2\.0\.0 Ok: queued as ([0-9A-F]{16})$", replies[7][1][0]).group(1)
    assert c.read_all() == b""  # closed after 221
    queued = host.spool_files("queue")
    assert [os.path.basename(p) for p in queued] == [qid]
    assert host.spool_files("incoming") == []
    data = read(queued[0])
    assert data.startswith(b"ferry-queue 1\nid " + qid.encode() + b"\n")
    assert b"\nsender sender@outside.test\n" in data and b"\nrcpt demo@example.test\n" in data
    assert b"\nrcpt nobody" not in data and b"elsewhere" not in data
    assert b"\nhelo client.test\n" in data and b"\nclient 127.0.0.1\n" in data
    assert b"Subject: pipelined\n\n.dot\nbody\n\nend " in data
    assert b"with ESMTP id " + qid.encode() in data
    # qmgr is not running: the message is safe and smtpd says so.
    host.wait_log("smtpd", qid + r": qmgr not notified")


def test_notifies_qmgr(full):
    c = client(full)
    start_transaction(c)
    c.send("Subject: n\r\n\r\nx\r\n.\r\n")
    code, text = c.reply()
    assert code == 250
    qid = text[0].split()[-1]
    full.wait_log("qmgr", qid)
    full.wait_mail(DEMO, 1)
    assert "qmgr not notified" not in full.log("smtpd")


# --- policy and syntax ----------------------------------------------------------------------

def test_policy_replies(host):
    host.admin("alias", "add", "info@example.test", DEMO)
    host.start("smtpd")
    c = client(host)
    assert c.cmd("MAIL FROM:<a@b.test>")[0] == 503          # before EHLO
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("RCPT TO:<demo@example.test>")[0] == 503  # before MAIL
    assert c.cmd("DATA")[0] == 503
    assert c.cmd("MAIL FROM:<a@b.test> SIZE=20000000") == (552, ["5.3.4 Message size exceeds fixed limit of 10240000 bytes"])
    assert c.cmd("MAIL FROM:<a@b.test> FOO=BAR")[0] == 555
    assert c.cmd("MAIL FROM:<a b@b.test>")[0] == 553
    assert c.cmd("MAIL FROM:a@b.test")[0] == 553
    assert c.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert c.cmd("MAIL FROM:<a@b.test>")[0] == 503          # nested
    assert c.cmd("RCPT TO:<unknown@example.test>") == (550, ["5.1.1 <unknown@example.test>: Recipient address rejected: User unknown"])
    assert c.cmd("RCPT TO:<victim@elsewhere.test>") == (554, ["5.7.1 <victim@elsewhere.test>: Relay access denied"])
    assert c.cmd("RCPT TO:<demo@[127.0.0.1]>")[0] == 554
    assert c.cmd("RCPT TO:<>")[0] == 553
    assert c.cmd("DATA") == (554, ["5.5.1 Error: no valid recipients"])
    assert c.cmd("RCPT TO:<DEMO@Example.Test>")[0] == 250
    assert c.cmd("RCPT TO:<info@example.test>")[0] == 250  # an alias
    assert c.cmd("RCPT TO:<@relay.test:demo@example.test>")[0] == 250  # source route ignored
    assert c.cmd("VRFY demo")[0] == 252
    assert c.cmd("EXPN list")[0] == 502
    assert c.cmd("STARTTLS")[0] == 502  # not offered without TLS
    assert c.cmd("FOO bar")[0] == 500
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("QUIT")[0] == 221
    log = host.log("smtpd")
    assert re.search(r"reject: RCPT from \[127\.0\.0\.1\]: 550 5\.1\.1 <unknown@example\.test>", log)
    assert re.search(r"reject: RCPT from \[127\.0\.0\.1\]: 554 5\.7\.1 <victim@elsewhere\.test>", log)


def test_catch_all_accepts_any_local_part(host):
    host.admin("alias", "add", "@example.test", DEMO)
    host.start("smtpd")
    c = client(host)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert c.cmd("RCPT TO:<anything@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<anything@elsewhere.test>")[0] == 554


def refused_then_one_real_message(f, sender, rcpt, code, text_regex):
    """RCPT TO:<rcpt> is refused (code, text); nothing is queued and no bounce reaches demo, which a
    real message sent afterwards (and delivered) shows the pipeline would have had time for."""
    c = client(f)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd(f"MAIL FROM:<{sender}>")[0] == 250
    got = c.cmd(f"RCPT TO:<{rcpt}>")
    assert got[0] == code and re.fullmatch(text_regex, got[1][0]), got
    assert c.cmd("DATA") == (554, ["5.5.1 Error: no valid recipients"])
    assert c.cmd("RSET")[0] == 250
    assert f.spool_files("incoming") == [] and f.spool_files("queue") == []
    tok = uuid.uuid4().hex
    start_transaction(c)
    c.send(f"Subject: {tok}\r\n\r\n{tok}\r\n.\r\n")
    assert c.reply()[0] == 250
    assert c.cmd("QUIT")[0] == 221
    f.wait_mail(DEMO, 1)
    # Once the queue is empty, a bounce of the refused recipient would have been delivered too.
    wait_until(lambda: f.spool_ids("queue") == [], what="queue emptied")
    files = f.mail(DEMO)
    assert len(files) == 1 and tok.encode() in read(files[0]), files
    assert not re.search(r"bounce|5\.1\.3|5\.4\.6", f.log("qmgr")), f.log("qmgr")


def test_quoted_local_part_under_catch_all_is_refused_not_bounced(host):
    # aliases::expand in qmgr refuses a quoted local part: accepted, it became a bounce to a
    # possibly forged sender (backscatter). The catch-all would take the bounce to demo.
    host.admin("alias", "add", "@example.test", DEMO)
    host.start("mda", "qmgr", "smtpd")
    refused_then_one_real_message(host, "victim@example.test", '"john smith"@example.test', 553,
                                  re.escape('5.1.3 <"john smith"@example.test>: Recipient address rejected: bad address syntax'))
    assert re.search(r'reject: RCPT from \[127\.0\.0\.1\]: 553 5\.1\.3 <"john smith"@example\.test>', host.log("smtpd"))


def test_alias_loop_is_refused_at_rcpt_not_bounced(host):
    # a -> b -> a with no account on the way: qmgr's expansion fails 554 5.4.6, so RCPT must.
    host.admin("alias", "add", "a@example.test", "b@example.test")
    host.admin("alias", "add", "b@example.test", "a@example.test")
    host.start("mda", "qmgr", "smtpd")
    for rcpt in ["a@example.test", "B@Example.Test"]:
        refused_then_one_real_message(host, DEMO, rcpt, 554,
                                      re.escape(f"5.4.6 <{rcpt}>: Recipient address rejected: alias loop for <") + r".*")
        for p in host.wait_mail(DEMO, 1):
            os.unlink(p)


def test_bare_postmaster_is_delivered_to_postmaster_address(host):
    # RFC 5321 4.5.1: RCPT TO:<Postmaster> without a domain must be accepted.
    host.admin("alias", "add", "postmaster@example.test", DEMO)
    host.set(postmaster_address="postmaster@example.test")
    host.start("mda", "qmgr", "smtpd")
    c = client(host)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert c.cmd("RCPT TO:<Postmaster>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    assert c.cmd("Subject: to the postmaster\r\n\r\nhello postmaster\r\n.")[0] == 250
    c.cmd("QUIT")
    files = host.wait_mail(DEMO, 1)
    assert b"hello postmaster" in open(files[0], "rb").read()
    assert "postmaster_address" not in host.log("smtpd")


def test_unhosted_postmaster_address_is_a_startup_warning(host):
    host.start("smtpd")  # hostname mx.test is not a hosted domain
    host.wait_log("smtpd", r"warning: postmaster_address postmaster@mx\.test is not in a hosted domain")
    c = client(host)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert c.cmd("RCPT TO:<Postmaster>")[0] == 554


# --- SMTP smuggling -------------------------------------------------------------------------

FAKE_ENDS = {"LF.LF": b"\n.\n", "CRLF.LF": b"\r\n.\n", "LF.CRLF": b"\n.\r\n", "CR.CRLF": b"\r.\r\n"}


@pytest.mark.parametrize("name", list(FAKE_ENDS))
def test_smuggling_delivers_nothing_smuggled(full, name):
    fake = FAKE_ENDS[name]
    tok = uuid.uuid4().hex
    c = client(full)
    start_transaction(c)
    smuggled = (b"MAIL FROM:<evil@outside.test>\r\nRCPT TO:<" + DEMO.encode() + b">\r\nDATA\r\n"
                b"Subject: smuggled " + tok.encode() + b"\r\n\r\nSMUGGLED\r\n")
    c.send(b"Subject: carrier\r\n\r\ncarrier body" + fake + smuggled + b".\r\n")
    code, text = c.reply()
    assert code == 554, text
    assert text[0].startswith("5.6.11 Bare LF/CR not allowed in message, use CRLF")
    # The session goes on in the RSET state, and a correct message is accepted.
    assert c.cmd("MAIL FROM:<sender@outside.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{DEMO}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(f"Subject: good {tok}\r\n\r\ngood body\r\n.\r\n")
    assert c.reply()[0] == 250
    assert c.cmd("QUIT")[0] == 221
    c.close()
    # And in a new session too.
    with smtplib.SMTP("127.0.0.1", full.port("smtp"), timeout=30) as s:
        s.sendmail("sender@outside.test", [DEMO], f"Subject: second {tok}\r\n\r\nx\r\n")
    full.wait_mail(DEMO, 2)
    # Anything smuggled would have been queued with the real messages: gone once the queue is empty.
    wait_until(lambda: full.spool_ids("queue") == [], what="queue emptied")
    files = full.mail(DEMO)
    assert len(files) == 2, files
    for p in files:
        data = read(p)
        assert b"SMUGGLED" not in data and b"carrier" not in data
    assert full.spool_files("incoming") == []
    full.wait_log("smtpd", r"discarded: .*Bare LF/CR not allowed.*bare (LF|CR) in message")


# --- limits ---------------------------------------------------------------------------------

def test_oversized_data_streams_in_bounded_memory(host):
    host.set(message_size_limit="1M")
    host.start("smtpd")
    pid = host.pid("smtpd")
    c = client(host, timeout=120)
    assert c.cmd("EHLO client.test")[1][-7:] == ["PIPELINING", "SIZE 1048576", "8BITMIME", "ENHANCEDSTATUSCODES",
                                                 "CHUNKING", "SMTPUTF8", "DSN"]
    assert c.cmd("MAIL FROM:<a@b.test> SIZE=2000000")[0] == 552
    assert c.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{DEMO}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    before = vm_hwm_kib(pid)
    line = b"x" * 998 + b"\r\n"
    chunk = b"Subject: big\r\n\r\n" + line * 1024  # ~1 MB per write
    total = 0
    while total < 100 * 1024 * 1024:
        c.send(chunk)
        total += len(chunk)
        chunk = line * 1024
    c.send(b".\r\n")
    assert c.reply() == (552, ["5.3.4 Message size exceeds fixed limit of 1048576 bytes"])
    after = vm_hwm_kib(pid)
    print("VmHWM before %d KiB after %d KiB" % (before, after))
    assert after - before < 32 * 1024, (before, after)
    assert host.spool_files("incoming") == [] and host.spool_files("queue") == []
    # The session is usable afterwards.
    start = c.cmd("MAIL FROM:<a@b.test>")
    assert start[0] == 250
    assert c.cmd(f"RCPT TO:<{DEMO}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: small\r\n\r\nok\r\n.\r\n")
    assert c.reply()[0] == 250
    assert len(host.spool_files("queue")) == 1


def test_large_accepted_message_streams_to_spool(host):
    host.set(message_size_limit="60M")
    host.start("smtpd")
    pid = host.pid("smtpd")
    c = client(host, timeout=120)
    start_transaction(c)
    before = vm_hwm_kib(pid)
    line = b"z" * 78 + b"\r\n"
    block = line * 8192
    c.send(b"Subject: large\r\n\r\n")
    for _ in range(50 * 1024 * 1024 // len(block)):
        c.send(block)
    c.send(b".\r\n")
    code, text = c.reply()
    assert code == 250, text
    after = vm_hwm_kib(pid)
    assert after - before < 32 * 1024, (before, after)
    queued = host.spool_files("queue")
    assert len(queued) == 1
    assert os.path.getsize(queued[0]) > 50 * 1024 * 1024 * 79 // 80


def test_data_line_and_header_limits(host):
    host.set(smtpd_max_line_length="1000", smtpd_max_header_size="2048")
    host.start("smtpd")
    c = client(host)
    start_transaction(c)
    c.send(b"Subject: at limit\r\n\r\n" + b"y" * 998 + b"\r\n.\r\n")  # 1000 with CRLF: fine
    assert c.reply()[0] == 250
    assert c.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{DEMO}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: one past\r\n\r\n" + b"y" * 999 + b"\r\n.\r\n")
    assert c.reply() == (552, ["5.3.4 Message line exceeds limit of 1000 octets"])
    assert c.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{DEMO}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"h" * 80) for i in range(40))  # > 2048 bytes
    c.send(b"Subject: big header\r\n" + headers + b"\r\nbody\r\n.\r\n")
    assert c.reply() == (552, ["5.3.4 Message header exceeds limit of 2048 bytes"])
    assert len(host.spool_files("queue")) == 1
    assert host.spool_files("incoming") == []


def test_recipient_limit(host):
    host.set(smtpd_max_recipients="2")
    host.start("smtpd")
    c = client(host)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{DEMO}>")[0] == 250
    assert c.cmd(f"RCPT TO:<{DEMO}>")[0] == 250
    assert c.cmd(f"RCPT TO:<{DEMO}>") == (452, ["4.5.3 Error: too many recipients"])
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: two\r\n\r\nx\r\n.\r\n")
    assert c.reply()[0] == 250


def test_command_line_limit(host):
    host.set(smtpd_max_command_length="512")
    host.start("smtpd")
    c = client(host)
    assert c.cmd("NOOP " + "a" * 505)[0] == 250  # 512 octets with CRLF
    assert c.cmd("NOOP " + "a" * 506) == (500, ["5.5.2 Error: line too long"])
    # An over-long line sent in pieces: its tail is never read as a command.
    c.send("NOOP " + "b" * 3000)
    time.sleep(0.2)
    c.send("MAIL FROM:<evil@x.test>\r\n")
    assert c.reply() == (500, ["5.5.2 Error: line too long"])
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("RCPT TO:<demo@example.test>")[0] == 503  # the MAIL in the long line did not count


def b64(data):
    return base64.b64encode(data.encode()).decode()


FORGED = "2026-01-01T00:00:00.000Z ferry-smtpd[1]: info: [10.9.9.9]: AUTH PLAIN user=boss@example.test ok"


def test_sasl_identity_cannot_forge_log_lines(host):
    # AUTH is offered on loopback without TLS (plaintext_auth = loopback). A control byte in a
    # PLAIN authcid/authzid or a LOGIN user name would otherwise reach the log raw.
    host.start("smtpd")
    c = client(host)
    assert c.cmd("EHLO client.test")[0] == 250
    bad = (535, ["5.7.8 Authentication credentials invalid"])
    for sep in ["\n", "\r\n", "\r"]:
        user = "x" + sep + FORGED
        assert c.cmd("AUTH PLAIN " + b64("\0" + user + "\0pw")) == bad
        assert c.cmd("AUTH PLAIN " + b64(user + "\0" + user + "\0pw")) == bad
        assert c.cmd("AUTH LOGIN " + b64(user)) == bad
        assert c.cmd("AUTH LOGIN") == (334, [b64("Username:")])
        assert c.cmd(b64(user)) == bad
    assert c.cmd("QUIT")[0] == 221
    host.wait_log("smtpd", r"disconnect from \[127\.0\.0\.1\]: QUIT")
    log = host.log("smtpd")
    assert "2026-01-01T" not in log and "boss@example.test" not in log, log
    assert "\r" not in log
    assert len(re.findall(r"AUTH (PLAIN|LOGIN) failed: 535 5\.7\.8", log)) == 12, log
    for line in log.splitlines():  # every line is one of smtpd's own
        assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z ferry-smtpd\[\d+\]: \w+: ", line), line


def test_password_after_a_failed_sasl_exchange_is_not_logged(host):
    # A SASL exchange that ends early (bad base64, cancel) leaves the client's next line, often the
    # password, to be read as a command: its refusal, the error limit and the timeout must not log it.
    host.set(smtpd_max_errors="6", smtpd_timeout="2s")
    host.start("smtpd")
    secrets = [b64("Secret-Pass-123"), b64("\0demo@example.test\0demo-secret"), b64("Cancel-Pass-456")]
    c = client(host)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("AUTH LOGIN")[0] == 334
    c.send("ZGVtbw\r\n" + secrets[0] + "\r\n")  # user name not canonical base64; the password follows
    assert c.reply()[0] == 501
    assert c.reply()[0] == 500
    assert c.cmd("AUTH PLAIN")[0] == 334
    c.send(secrets[1] + "x\r\n" + secrets[1] + "\r\n")
    assert c.reply()[0] == 501
    assert c.reply()[0] == 500
    assert c.cmd("AUTH LOGIN " + b64(DEMO))[0] == 334
    c.send("*\r\n" + secrets[2] + "\r\n")
    assert c.reply()[0] == 501
    assert c.reply()[0] == 500  # the sixth error
    assert c.reply() == (421, ["4.7.0 mx.test Error: too many errors"])
    host.wait_log("smtpd", r"too many errors after unknown from \[127\.0\.0\.1\]")
    # And the timeout after such a line.
    c = client(host)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("AUTH PLAIN")[0] == 334
    c.send("=\r\n" + secrets[0][:12] + "\r\n")
    assert c.reply()[0] == 501  # "=" is not base64 in a response
    assert c.reply()[0] == 500
    assert c.reply() == (421, ["4.4.2 mx.test Error: timeout exceeded"])
    host.wait_log("smtpd", r"timeout after unknown from \[127\.0\.0\.1\]")
    log = host.log("smtpd")
    assert len(re.findall(r"reject: unknown from \[127\.0\.0\.1\]: 500 5\.5\.2", log)) == 4, log
    for secret in secrets:
        for fragment in {secret[:8], secret[:8].upper(), secret[:8].lower()}:
            assert fragment not in log, (fragment, log)
    # Verbs of the command table are still named.
    assert "timeout after" in log and "reject: AUTH" not in log


def test_max_errors_closes(host):
    host.set(smtpd_max_errors="3")
    host.start("smtpd")
    c = client(host)
    assert c.cmd("BAD1")[0] == 500
    assert c.cmd("BAD2")[0] == 500
    c.send("BAD3\r\n")
    assert c.reply()[0] == 500
    assert c.reply() == (421, ["4.7.0 mx.test Error: too many errors"])
    assert c.read_all() == b""


def test_idle_timeout(host):
    host.set(smtpd_timeout="1s")
    host.start("smtpd")
    c = client(host)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.reply() == (421, ["4.4.2 mx.test Error: timeout exceeded"])
    assert c.read_all() == b""
    host.wait_log("smtpd", r"timeout after EHLO from \[127\.0\.0\.1\]")


def test_max_sessions(host):
    host.set(smtpd_max_sessions="2")
    host.start("smtpd")
    a, b = client(host), client(host)
    assert a.banner[0] == 220 and b.banner[0] == 220
    c = client(host)
    assert c.banner == (421, ["4.7.0 mx.test Too many connections, try again later"])
    assert c.read_all() == b""
    a.cmd("QUIT")
    a.close()
    host.wait_log("smtpd", r"disconnect from .*QUIT")
    d = client(host)
    assert d.banner[0] == 220


def test_connection_lost_during_data_leaves_nothing(host):
    host.start("smtpd")
    c = client(host)
    start_transaction(c)
    c.send(b"Subject: cut\r\n\r\npartial")
    time.sleep(0.2)
    c.close()
    host.wait_log("smtpd", r"discarded: connection lost during DATA")
    assert host.spool_files("incoming") == [] and host.spool_files("queue") == []


def test_sigterm_exits_cleanly(host):
    host.start("smtpd")
    c = client(host)
    host.procs["smtpd"].terminate()
    assert host.procs["smtpd"].wait(timeout=10) == 0
    c.close()


def test_relay_networks_may_relay_without_auth(host):
    """smtpd_relay_networks: clients there relay like a logged-in client; others still may not."""
    host.set(smtpd_relay_networks="127.0.0.2/32, ::1")
    host.start("smtpd")
    c = client(host)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert c.cmd("RCPT TO:<victim@elsewhere.test>")[0] == 554  # 127.0.0.1 is not in it
    c.close()
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), source_address=("127.0.0.2", 0), timeout=30) as s:
        s.ehlo("client.test")
        assert s.mail("a@b.test")[0] == 250
        assert s.rcpt("friend@elsewhere.test")[0] == 250


def test_bad_relay_networks_stop_the_start(host):
    host.set(smtpd_relay_networks="10.0.0.1/8")
    p = subprocess.run([binary("smtpd"), "-c", host.conf], capture_output=True, text=True, timeout=20)
    assert p.returncode == 78, p.stderr
    assert "smtpd_relay_networks: host bits set beyond the prefix in 10.0.0.1/8" in p.stderr
