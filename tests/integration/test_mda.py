"""ferry-mda: LMTP over its Unix socket with a real client (smtplib.LMTP), the Maildir it writes, and LDA mode."""
import glob
import os
import re
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from ferry_harness import binary, tmp_files, wait_until

SENDER = "sender@remote.test"
QID = "0123456789ABCDEF"
MESSAGE = (f"Received: from client.test (client.test [127.0.0.1])\r\n"
           f"\tby mx.test (ferry) with ESMTP id {QID};\r\n"
           "\tMon, 1 Jan 2024 00:00:00 +0000\r\n"
           "From: sender@remote.test\r\n"
           "Subject: hello\r\n"
           "\r\n"
           ".a line that starts with a dot\r\n"
           "body line\r\n"
           "\r\n"
           "8bit: \xc3\xa9t\xc3\xa9\r\n").encode("latin-1")


def lf(data):
    return data.replace(b"\r\n", b"\n")


def expected_file(recipient, message=MESSAGE, sender=SENDER):
    return f"Return-Path: <{sender}>\nDelivered-To: {recipient}\n".encode() + lf(message)


@pytest.fixture
def mda(ferry):
    ferry.add_domain("example.test")
    ferry.add_account("demo@example.test", "pw")
    ferry.add_account("other@example.test", "pw")
    return ferry


def socket_path(f):
    return os.path.join(f.keys["run_dir"], "lmtp.sock")


def lmtp(f):
    client = smtplib.LMTP(socket_path(f), timeout=10)
    code, _ = client.ehlo("qmgr.test")  # smtplib.LMTP sends LHLO
    assert code == 250
    return client


def data_replies(client, message, count):
    """DATA, then RFC 2033's one reply per accepted recipient, in RCPT order."""
    replies = [client.data(message)]
    for _ in range(count - 1):
        replies.append(client.getreply())
    return replies


def raw_dialogue(f, payload, replies_wanted, timeout=10):
    """Sends bytes over a plain Unix socket and collects that many reply lines' final lines."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(socket_path(f))
    buf = b""
    s.sendall(payload)
    end = time.time() + timeout
    while time.time() < end:
        finals = [l for l in buf.split(b"\r\n") if re.match(rb"^\d{3} ", l)]
        if len(finals) >= replies_wanted:
            break
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return [l.decode() for l in buf.split(b"\r\n") if re.match(rb"^\d{3} ", l)]


def only_file(f, address):
    files = f.mail(address)
    assert len(files) == 1, files
    return files[0]


def check_name_sizes(path):
    name = os.path.basename(path)
    m = re.search(r",S=(\d+),W=(\d+)$", name)
    assert m, name
    data = open(path, "rb").read()
    assert int(m.group(1)) == len(data)
    assert int(m.group(2)) == len(data.replace(b"\n", b"\r\n"))


def test_lhlo_features_and_sequence_errors(mda):
    mda.start("mda")
    assert re.search(r"listening on lmtp \S+lmtp\.sock$", mda.log("mda"), re.M)
    client = smtplib.LMTP(socket_path(mda), timeout=10)
    assert client.helo("x")[0] == 500          # LMTP has no HELO
    assert client.docmd("EHLO x")[0] == 500    # nor EHLO
    assert client.docmd("MAIL FROM:<a@b.test>")[0] == 503  # before LHLO
    code, text = client.ehlo("qmgr.test")
    assert code == 250
    # SIZE: message_size_limit plus the 16384 bytes allowed for trace headers (ferry-mda(8)).
    for ext in (b"PIPELINING", b"ENHANCEDSTATUSCODES", b"8BITMIME", b"SIZE 10256384"):
        assert ext in text.split(b"\n")
    assert client.docmd("RCPT TO:<demo@example.test>") == (503, b"5.5.1 Need MAIL command")
    assert client.docmd("DATA")[0] == 503
    assert client.mail(SENDER)[0] == 250
    assert client.docmd("MAIL FROM:<x@y.test>")[0] == 503  # nested
    assert client.docmd("DATA") == (503, b"5.5.1 No valid recipients")
    assert client.rset()[0] == 250
    assert client.noop()[0] == 250
    assert client.docmd("VRFY demo")[0] == 500
    assert client.docmd("MAIL FROM:<a@b.test> SIZE=10256385")[0:1] == (552,)
    assert client.docmd("MAIL FROM:<a@b.test> SIZE=10256384")[0] == 250
    assert client.quit()[0] == 221


def test_two_accounts_and_one_unknown_get_one_reply_each(mda):
    mda.start("mda")
    client = lmtp(mda)
    assert client.mail(SENDER)[0] == 250
    assert client.rcpt("demo@example.test")[0] == 250
    assert client.rcpt("nobody@example.test") == (550, b"5.1.1 No such user here")
    assert client.rcpt("Other@Example.TEST")[0] == 250   # normalised to other@example.test
    replies = data_replies(client, MESSAGE, 2)
    assert [r[0] for r in replies] == [250, 250]
    assert replies[0][1].startswith(b"2.0.0 <demo@example.test>")
    assert replies[1][1].startswith(b"2.0.0 <other@example.test>")
    client.quit()

    for address in ("demo@example.test", "other@example.test"):
        path = only_file(mda, address)
        assert os.path.dirname(path) == os.path.join(mda.maildir(address), "new")
        data = open(path, "rb").read()
        assert data == expected_file(address)      # byte-exact, LF line ends, dots unstuffed
        assert b"\r" not in data
        assert data.startswith(f"Return-Path: <{SENDER}>\nDelivered-To: {address}\n".encode())
        check_name_sizes(path)
        assert os.listdir(os.path.join(mda.maildir(address), "tmp")) == []
        assert oct(os.stat(os.path.join(mda.maildir(address), "new")).st_mode & 0o777) == "0o700"
        name = os.path.basename(path)
        mda.wait_log("mda", rf"^.*: {QID}: to=<{re.escape(address)}> delivered to maildir as {re.escape(name)}$")
    assert not os.path.exists(mda.maildir("nobody@example.test"))


def test_session_to_nonexistent_user_only(mda):
    mda.start("mda")
    client = lmtp(mda)
    assert client.mail(SENDER)[0] == 250
    code, text = client.rcpt("ghost@example.test")
    assert (code, text[:5]) == (550, b"5.1.1")
    code, text = client.rcpt("someone@unknown-domain.test")
    assert (code, text[:5]) == (550, b"5.1.1")
    assert client.docmd("DATA") == (503, b"5.5.1 No valid recipients")
    client.quit()
    assert not os.path.exists(os.path.join(mda.keys["mail_dir"], "unknown-domain.test"))
    assert mda.mail("ghost@example.test") == []


def test_null_sender_and_duplicate_recipient(mda):
    mda.start("mda")
    client = lmtp(mda)
    assert client.docmd("MAIL FROM:<>")[0] == 250
    assert client.rcpt("demo@example.test")[0] == 250
    assert client.rcpt("DEMO@example.test")[0] == 250
    replies = data_replies(client, b"Subject: bounce\r\n\r\nx\r\n", 2)
    assert [r[0] for r in replies] == [250, 250]   # one reply per RCPT ...
    client.quit()
    path = only_file(mda, "demo@example.test")     # ... but one copy per mailbox
    assert open(path, "rb").read() == b"Return-Path: <>\nDelivered-To: demo@example.test\nSubject: bounce\n\nx\n"


def test_pipelined_transaction_in_one_write(mda):
    mda.start("mda")
    payload = (b"LHLO q\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<demo@example.test>\r\nRCPT TO:<x@example.test>\r\n"
               b"RCPT TO:<other@example.test>\r\nDATA\r\nSubject: p\r\n\r\n..x\r\n.\r\nQUIT\r\n")
    finals = raw_dialogue(mda, payload, 10)
    codes = [int(l[:3]) for l in finals]
    assert codes == [220, 250, 250, 250, 550, 250, 354, 250, 250, 221], finals
    assert open(only_file(mda, "other@example.test"), "rb").read().endswith(b"Subject: p\n\n.x\n")


def test_disk_error_is_451_for_that_recipient_only(mda):
    mda.start("mda")
    broken = mda.maildir("other@example.test")
    os.makedirs(broken)
    open(os.path.join(broken, "tmp"), "w").close()   # tmp/ is a file: the write must fail
    client = lmtp(mda)
    client.mail(SENDER)
    client.rcpt("other@example.test")
    client.rcpt("demo@example.test")
    replies = data_replies(client, MESSAGE, 2)
    assert replies[0][0] == 451 and replies[0][1].startswith(b"4.3.0")
    assert replies[1][0] == 250
    client.quit()
    assert open(only_file(mda, "demo@example.test"), "rb").read() == expected_file("demo@example.test")
    mda.wait_log("mda", rf"{QID}: to=<other@example.test> not delivered")


def test_size_limit(mda):
    mda.set(message_size_limit="2000")
    mda.start("mda")
    client = lmtp(mda)
    client.mail(SENDER)
    client.rcpt("demo@example.test")
    client.rcpt("other@example.test")
    # Over the limit plus its 16384-byte trace allowance (ferry-mda(8)).
    replies = data_replies(client, b"Subject: big\r\n\r\n" + b"0123456789\r\n" * 1700, 2)
    assert [(c, t[:5]) for c, t in replies] == [(552, b"5.3.4"), (552, b"5.3.4")]
    # The session goes on: a small message afterwards is delivered.
    client.mail(SENDER)
    client.rcpt("demo@example.test")
    assert data_replies(client, b"Subject: small\r\n\r\nok\r\n", 1)[0][0] == 250
    client.quit()
    assert len(mda.mail("demo@example.test")) == 1


def test_long_command_line_and_timeout(mda):
    mda.set(mda_timeout="1s", mda_max_command_length="600")
    mda.start("mda")
    finals = raw_dialogue(mda, b"LHLO q\r\nNOOP " + b"x" * 700 + b"\r\nNOOP\r\n", 4)
    assert [l[:9] for l in finals] == ["220 mx.te", "250 DSN", "500 5.5.2", "250 2.0.0"], finals
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(socket_path(mda))
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    assert got.split(b"\r\n")[-2].startswith(b"421 4.4.2")


def test_max_sessions(mda):
    mda.set(mda_max_sessions="1")
    mda.start("mda")
    first = lmtp(mda)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(socket_path(mda))
    assert s.recv(4096).startswith(b"421 4.3.2")
    first.quit()


def test_crash_after_tmp_leaves_nothing_visible(mda):
    mda.set(test_pause_at="mda-after-tmp")
    mda.start("mda")
    client = smtplib.LMTP(socket_path(mda), timeout=10)
    client.ehlo("q")
    client.mail(SENDER)
    client.rcpt("demo@example.test")
    client.putcmd("DATA")
    assert client.getreply()[0] == 354
    client.send(lf(MESSAGE).replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..") + b".\r\n")
    mda.wait_log("mda", rf"{QID}: paused at mda-after-tmp")
    md = mda.maildir("demo@example.test")
    # Written and fsync'd as an unnamed file in tmp/ (O_TMPFILE): no name anyone could see ...
    assert os.listdir(os.path.join(md, "tmp")) == []
    [held] = tmp_files(mda.pid("mda"), md)
    assert open(held, "rb").read() == expected_file("demo@example.test")
    assert os.listdir(os.path.join(md, "new")) == []   # ... but not delivered: qmgr will retry
    mda.kill("mda", signal.SIGKILL)
    client.close()
    mda.set(test_pause_at="")
    mda.restart("mda")
    assert os.listdir(os.path.join(md, "new")) == []


def run_lda(f, *args, input=b""):
    return subprocess.run([binary("mda"), "-c", f.conf, *args], input=input, capture_output=True, timeout=30)


def test_lda_mode_delivers_and_exits_0(mda):
    p = run_lda(mda, "-d", "Demo@Example.TEST", "-f", SENDER, input=MESSAGE)
    assert p.returncode == 0, p.stderr
    path = only_file(mda, "demo@example.test")
    assert open(path, "rb").read() == expected_file("demo@example.test")   # CRLF in, LF stored
    check_name_sizes(path)
    assert re.search(rf"{QID}: to=<demo@example.test> delivered to maildir as ", p.stderr.decode())
    # LF input works as well, and no -f is the null sender.
    p = run_lda(mda, "-d", "other@example.test", input=b"Subject: lf\n\nbody\n")
    assert p.returncode == 0, p.stderr
    assert open(only_file(mda, "other@example.test"), "rb").read() == \
        b"Return-Path: <>\nDelivered-To: other@example.test\nSubject: lf\n\nbody\n"


def test_a_last_line_without_newline_is_stored_with_one(mda):
    # RFC 5322 lines end in CRLF; a message cut short gets its LF so that S=, W= and what POP3 sends agree.
    cases = [(b"Subject: a\n\nlast line without newline", b"Subject: a\n\nlast line without newline\n"),
             (b"Subject: b\r\n\r\nCRLF input cut short", b"Subject: b\n\nCRLF input cut short\n"),
             (b"Subject: c\nX: header only", b"Subject: c\nX: header only\n"),
             (b"Subject: d\n\nalready ended\n", b"Subject: d\n\nalready ended\n"),
             (b"", b"")]
    for text, body in cases:
        for path in mda.mail("demo@example.test"):
            os.unlink(path)
        p = run_lda(mda, "-d", "demo@example.test", input=text)
        assert p.returncode == 0, p.stderr
        path = only_file(mda, "demo@example.test")
        assert open(path, "rb").read() == b"Return-Path: <>\nDelivered-To: demo@example.test\n" + body
        check_name_sizes(path)


def test_lda_mode_exit_codes(mda):
    assert run_lda(mda, "-d", "nobody@example.test", input=MESSAGE).returncode == 67   # EX_NOUSER
    assert run_lda(mda, "-d", "x@nowhere.test", input=MESSAGE).returncode == 67
    assert run_lda(mda, "-d", "not an address", input=MESSAGE).returncode == 64        # EX_USAGE
    mda.set(message_size_limit="100")  # plus 16384 bytes for trace headers: 16484 in all
    assert run_lda(mda, "-d", "demo@example.test", input=b"x" * 16485).returncode == 65  # EX_DATAERR
    assert run_lda(mda, "-d", "demo@example.test", input=b"x" * 16484).returncode == 0
    md = mda.maildir("other@example.test")
    os.makedirs(os.path.dirname(md))
    open(md, "w").close()   # the Maildir path is a file: it cannot be created
    # The Maildir cannot be created: a disk error (451 4.3.0 in LMTP), so EX_TEMPFAIL, which the MTA retries.
    p = run_lda(mda, "-d", "other@example.test", input=b"x\n")
    assert p.returncode == 75, p.stderr                                                 # EX_TEMPFAIL
    assert b"Temporary failure writing the mailbox" in p.stderr
    bad = os.path.join(mda.root, "bad.conf")
    with open(bad, "w") as f:
        f.write("no_such_key = 1\n")
    p = subprocess.run([binary("mda"), "-c", bad, "-d", "demo@example.test"], input=b"", capture_output=True)
    assert p.returncode == 78                                                           # EX_CONFIG
    assert len(mda.mail("demo@example.test")) == 1
    assert mda.mail("nobody@example.test") == []


LDA_BOUND_KB = 16 * 1024    # peak RSS allowed to the LDA for a 30 MB message (whole in memory: over 60 MB)


def test_lda_streams_a_large_message_with_bounded_memory(mda, tmp_path):
    # CRLF lines with a lone CR here and there, 30 MB in all: stored with LF, byte for byte.
    line = b"0123456789" * 7 + b"abcdef\r\n"
    block = (line * 9 + b"a lone \r stays\r\n") * 100
    message = MESSAGE + block * (30_000_000 // len(block)) + b"last line\r\n"
    # It stops itself once the message is delivered, so its peak RSS can be read before it exits.
    mda.set(message_size_limit=str(40 << 20), test_pause_at="mda-before-reply")
    source = tmp_path / "big.eml"
    source.write_bytes(message)
    with open(source, "rb") as stdin, open(tmp_path / "stderr", "wb") as stderr:
        p = subprocess.Popen([binary("mda"), "-c", mda.conf, "-d", "demo@example.test", "-f", SENDER],
                             stdin=stdin, stderr=stderr)

    def stopped():
        with open(f"/proc/{p.pid}/stat") as fp:
            return fp.read().rsplit(")", 1)[1].split()[0] == "T"
    wait_until(stopped, timeout=60, what="the LDA paused after its delivery")
    with open(f"/proc/{p.pid}/status") as fp:
        peak = int(next(line for line in fp if line.startswith("VmHWM:")).split()[1])
    os.kill(p.pid, signal.SIGCONT)
    p.wait(timeout=30)
    err = (tmp_path / "stderr").read_bytes()
    assert p.returncode == 0, err
    path = only_file(mda, "demo@example.test")
    assert open(path, "rb").read() == expected_file("demo@example.test", message)
    check_name_sizes(path)
    assert peak < LDA_BOUND_KB, f"ferry-mda -d peaked at {peak} kB RSS"


def test_lda_refusals_store_nothing_even_late_in_a_large_message(mda):
    # The size limit and the NUL rule stop the stream part way: the tmp/ file goes with them.
    mda.set(message_size_limit=str(1 << 20))
    big = b"Subject: big\n\n" + b"x" * 100 + b"\n" * (2 << 20)
    assert run_lda(mda, "-d", "demo@example.test", input=big).returncode == 65
    nul = b"Subject: nul\n\n" + b"y\n" * 300_000 + b"\0\n"
    p = run_lda(mda, "-d", "demo@example.test", input=nul)
    assert p.returncode == 65, p.stderr
    md = mda.maildir("demo@example.test")
    assert glob.glob(os.path.join(md, "*", "*")) == []
    # A CR and its LF read in two pieces are one line end: the stream sees every split.
    for cut in (65535, 65536):
        text = b"Subject: cut\r\n\r\n" + b"z" * (cut - 19) + b"\r\nend\r\n"
        p = run_lda(mda, "-d", "other@example.test", input=text)
        assert p.returncode == 0, p.stderr
        files = mda.mail("other@example.test")
        stored = [open(f, "rb").read() for f in files]
        assert expected_file("other@example.test", text, sender="") in stored


def test_garbage_input_gets_errors_and_the_session_survives(mda):
    mda.start("mda")
    payload = (b"\x00\xff\xfe garbage\r\n" + b"x" * (2 << 20) + b"\r\n" + b"MAIL FROM:<bad address>\r\n"
               + b"LHLO q\r\nMAIL FROM:<a@b.test> FOO=BAR\r\nRCPT TO:<\r\nNOOP\r\n")
    finals = raw_dialogue(mda, payload, 8, timeout=20)
    codes = [int(l[:3]) for l in finals]
    assert codes[0] == 220 and codes[1] == 500 and codes[2] == 500, finals
    assert codes[3] in (501, 503, 553), finals      # bad path before LHLO: refused either way
    assert codes[4:6] == [250, 555], finals         # LHLO; an unknown MAIL parameter
    assert codes[6] in (501, 553), finals            # a broken path is a syntax error first
    assert codes[7] == 250, finals
    assert mda.procs["mda"].poll() is None


def test_many_recipients_share_one_live_copy(mda):
    """DATA is written once as it arrives; each other recipient's copy is made from it after the dot,
    so a session holds few files open however many recipients it has, and every copy is whole."""
    rcpts = [f"r{n}@example.test" for n in range(20)]
    for r in rcpts:
        mda.add_account(r, "pw")
    mda.start("mda")
    fds_before = len(os.listdir(f"/proc/{mda.pid('mda')}/fd"))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(socket_path(mda))
    body = b"".join(b"line %d of a long body\r\n" % i for i in range(20000))
    s.sendall(b"LHLO q\r\nMAIL FROM:<a@b.test>\r\n" + b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts)
              + b"DATA\r\n" + MESSAGE.replace(b"\r\n.", b"\r\n..") + body)

    # The message is on its way in: one tmp/ file holds it, and the session added a few descriptors
    # (its socket, that file, the account database opened at the first lookup), not one per recipient.
    def written():
        files = tmp_files(mda.pid("mda"), mda.keys["mail_dir"])
        return len(files) == 1 and os.path.getsize(files[0]) > len(lf(body))
    wait_until(written, what="the message written into one tmp/ file")
    assert len(os.listdir(f"/proc/{mda.pid('mda')}/fd")) <= fds_before + 5
    s.sendall(b".\r\nQUIT\r\n")
    buf = b""
    while not buf.endswith(b"221 2.0.0 mx.test closing connection\r\n"):
        chunk = s.recv(65536)
        assert chunk, buf
        buf += chunk
    assert buf.count(b"250 2.0.0 <r") == len(rcpts)
    for r in rcpts:
        assert open(only_file(mda, r), "rb").read() == expected_file(r, MESSAGE + body, "a@b.test")
    assert glob.glob(os.path.join(mda.keys["mail_dir"], "*", "*", "Maildir", "tmp", "*")) == []
