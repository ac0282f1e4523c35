"""The clamd checks against a small fake clamd speaking INSTREAM (test_clamd_real.py runs the real
one): ferry-smtpd refuses EICAR with 554 5.7.1 naming the signature and never delivers it, clean
mail passes with X-Virus-Scanned, the message comes in chunks, and a clamd that is down or silent
means 451 4.7.1, never an unscanned delivery. ferry-mda scans what ferry-smtpd did not (sendmail,
-d), refuses, quarantines or defers, and does not scan again what ferry-smtpd scanned."""
import glob
import os
import re
import smtplib
import socket
import struct
import subprocess
import threading

import pytest

from ferry_harness import binary, wait_until

EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class FakeClamd:
    """Answers INSTREAM like clamd: "stream: Eicar-Test-Signature FOUND" when the stream holds the
    EICAR string, "stream: OK" otherwise; `silent` reads the stream and never answers."""

    def __init__(self, unix_path=None, silent=False, reply=None):
        self.silent = silent
        self.reply = reply  # bytes to answer instead of a verdict
        self.chunks = []  # sizes of the chunks of the last stream
        self.streams = []  # every stream scanned, in order
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            self.address = unix_path
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.sock.listen(8)
        self.held = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _read(self, conn, n):
        buf = b""
        while len(buf) < n:
            d = conn.recv(n - len(buf))
            if not d:
                raise EOFError
            buf += d
        return buf

    def _run(self, conn):
        try:
            command = b""
            while not command.endswith(b"\0"):
                command += self._read(conn, 1)
            assert command == b"zINSTREAM\0", command
            data, chunks = b"", []
            while True:
                (n,) = struct.unpack(">I", self._read(conn, 4))
                if n == 0:
                    break
                chunks.append(n)
                data += self._read(conn, n)
            self.chunks = chunks
            self.streams.append(data)
            if self.silent:
                self.held.append(conn)
                return
            found = EICAR.encode() in data
            if self.reply is not None:
                conn.sendall(self.reply)
                conn.close()
                return
            conn.sendall(b"stream: Eicar-Test-Signature FOUND\0" if found else b"stream: OK\0")
        except (EOFError, OSError):
            pass
        conn.close()

    def stop(self):
        self.sock.close()
        for c in self.held:
            c.close()


def send(f, token, body):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), local_hostname="client.test", timeout=30) as s:
        s.sendmail("a@outside.test", ["demo@example.test"],
                   f"From: a@outside.test\r\nSubject: {token}\r\n\r\n{token}\r\n{body}\r\n")


def all_mail(f):
    root = f.maildir("demo@example.test")
    # os.walk, not glob: glob's ** skips the dot-folders (.Junk) a message may be filed into.
    return [open(os.path.join(d, n), errors="replace").read() for d, _, names in os.walk(root)
            if os.path.basename(d) in ("new", "cur") for n in names]


def refused(f, token, body):
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(f, token, body)
    return e.value.smtp_code, e.value.smtp_error.decode()


@pytest.fixture
def clamd():
    c = FakeClamd()
    yield c
    c.stop()


def test_eicar_is_refused_and_clean_mail_passes(host, clamd):
    host.set(clamd_address=clamd.address, clamd_timeout="5s")
    host.start("mda", "qmgr", "smtpd")
    code, text = refused(host, "virus-1", EICAR)
    assert code == 554
    assert text == "5.7.1 Message refused: virus found: Eicar-Test-Signature"
    assert "refused by clamd" in host.log("smtpd")
    # A large clean message goes as several chunks, none larger than 64 KiB.
    send(host, "clean-1", "x" * 200 + ("\r\n" + "y" * 70) * 3000)
    wait_until(lambda: any("clean-1" in m for m in all_mail(host)), 15, "clean-1 delivered")
    assert len(clamd.chunks) >= 3 and max(clamd.chunks) <= 65536
    text = next(m for m in all_mail(host) if "clean-1" in m)
    assert "\nX-Virus-Scanned: clamd at mx.test\n" in "\n" + text.split("\n\n", 1)[0] + "\n"
    assert not any("virus-1" in m for m in all_mail(host))
    assert "virus-1" not in host.log("qmgr")


def test_clamd_on_a_unix_socket(host):
    c = FakeClamd(unix_path=os.path.join(host.root, "clamd.sock"))
    try:
        host.set(clamd_address=c.address, clamd_timeout="5s")
        host.start("mda", "qmgr", "smtpd")
        assert refused(host, "virus-2", "in the body: " + EICAR)[0] == 554
        send(host, "clean-2", "fine")
        wait_until(lambda: any("clean-2" in m for m in all_mail(host)), 15, "clean-2 delivered")
    finally:
        c.stop()


def test_clamd_down_means_try_again_later(host):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    host.set(clamd_address=f"127.0.0.1:{s.getsockname()[1]}", clamd_timeout="5s")
    host.start("mda", "qmgr", "smtpd")
    code, text = refused(host, "down-1", "fine")
    assert (code, text) == (451, "4.7.1 Virus scan unavailable, try again later")
    assert "clamd: cannot connect to" in host.log("smtpd")
    s.close()
    assert not any("down-1" in m for m in all_mail(host))


def test_clamd_silent_means_try_again_later(host):
    c = FakeClamd(silent=True)
    try:
        host.set(clamd_address=c.address, clamd_timeout="2s")
        host.start("mda", "qmgr", "smtpd")
        code, text = refused(host, "silent-1", "fine")
        assert code == 451
        assert "no answer within clamd_timeout" in host.log("smtpd")
        assert not any("silent-1" in m for m in all_mail(host))
    finally:
        c.stop()


def test_clamd_garbage_means_try_again_later(host):
    c = FakeClamd(reply=b"\x01\x02 not clamd at all\n")  # no NUL: ends with the connection
    try:
        host.set(clamd_address=c.address, clamd_timeout="5s")
        host.start("mda", "qmgr", "smtpd")
        assert refused(host, "garbage-1", "fine")[0] == 451
        assert 'clamd: answered "?? not clamd at all"' in host.log("smtpd")
        assert not any("garbage-1" in m for m in all_mail(host))
    finally:
        c.stop()


# ferry-mda: the mail ferry-smtpd did not scan.

BOB = "bob@example.test"


def sendmail(f, token, body, headers="", sender=BOB, to=("demo@example.test",)):
    """ferry-sendmail (as root) to demo@example.test: through qmgr's submit socket, never ferry-smtpd."""
    msg = f"{headers}From: {sender}\nSubject: {token}\n\n{token}\n{body}\n"
    p = subprocess.run([binary("sendmail"), "-C", f.conf, "-f", sender, *to], input=msg,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def mail_of(f, address):
    return [open(p, errors="replace").read() for p in f.mail(address)]


def wait_removed(f, count):
    """Until qmgr has removed `count` messages from its queue (delivered, refused or bounced)."""
    wait_until(lambda: len(re.findall(r": removed$", f.log("qmgr"), re.M)) >= count, 20, f"{count} messages done")


@pytest.fixture
def local(host, clamd):
    host.add_account(BOB, "bob-secret")
    host.set(clamd_address=clamd.address, clamd_timeout="5s")
    return host


def test_mda_scans_mail_from_sendmail_and_bounces_a_virus(local, clamd):
    local.start("mda", "qmgr")
    sendmail(local, "mda-virus-1", EICAR)
    # Refused by ferry-mda with 554, so qmgr returns it to the sender.
    wait_until(lambda: any("mda-virus-1" in m for m in mail_of(local, BOB)), 20, "the bounce to bob")
    [bounce] = [m for m in mail_of(local, BOB) if "mda-virus-1" in m]
    assert "virus found: Eicar-Test-Signature" in bounce
    assert re.search(r": virus found by clamd: Eicar-Test-Signature$", local.log("mda"), re.M)
    assert re.search(r"to=<demo@example.test> refused, virus found: Eicar-Test-Signature", local.log("mda"))
    assert not any("mda-virus-1" in m for m in all_mail(local))
    # Clean mail is scanned and delivered; a sender cannot skip the scan by writing the mark itself.
    sendmail(local, "mda-clean-1", "fine")
    wait_until(lambda: any("mda-clean-1" in m for m in all_mail(local)), 15, "mda-clean-1 delivered")
    assert any(b"mda-clean-1" in s for s in clamd.streams)
    sendmail(local, "mda-forged-1", EICAR, headers="X-Virus-Scanned: clamd at mx.test\n")
    wait_until(lambda: any("mda-forged-1" in m for m in mail_of(local, BOB)), 20, "the bounce of the forged one")
    assert not any("mda-forged-1" in m for m in all_mail(local))
    # The bounces (header only) are mail that did not come through ferry-smtpd either: scanned too.
    assert sum(b"mda-virus-1" in d for d in clamd.streams) == 2


def test_mail_scanned_by_smtpd_is_not_scanned_again(local, clamd):
    local.start("mda", "qmgr", "smtpd")
    send(local, "once-1", "fine")
    wait_until(lambda: any("once-1" in m for m in all_mail(local)), 15, "once-1 delivered")
    assert len(clamd.streams) == 1  # ferry-smtpd's scan only
    assert "already scanned by ferry-smtpd" in local.log("mda")
    # A mark from outside is removed by ferry-smtpd: only its own stands in the message.
    with smtplib.SMTP("127.0.0.1", local.port("smtp"), local_hostname="client.test", timeout=30) as s:
        s.sendmail("a@outside.test", ["demo@example.test"],
                   "X-Virus-Scanned: clamd at MX.test\r\nSubject: once-2\r\n\r\nonce-2\r\n")
    wait_until(lambda: any("once-2" in m for m in all_mail(local)), 15, "once-2 delivered")
    text = next(m for m in all_mail(local) if "once-2" in m)
    assert text.lower().count("x-virus-scanned:") == 1
    assert "removed 1 X-Virus-Scanned header(s) claiming mx.test" in local.log("smtpd")
    assert len(clamd.streams) == 2


def test_mda_quarantines_when_told(local, clamd):
    local.set(mda_virus_action="quarantine")
    local.add_account("carol@example.test", "carol-secret")
    local.start("mda", "qmgr")
    # One LMTP transaction for both: one scan, one quarantined copy naming both recipients.
    sendmail(local, "quarantine-1", "in the body: " + EICAR, to=("demo@example.test", "carol@example.test"))
    qdir = os.path.join(local.keys["state_dir"], "mda", "quarantine")
    wait_until(lambda: glob.glob(os.path.join(qdir, "*")), 15, "a quarantined message")
    [path] = glob.glob(os.path.join(qdir, "*"))
    text = open(path).read()
    assert text.startswith("X-Ferry-Quarantine: virus found: Eicar-Test-Signature; from=<bob@example.test>; "
                           "to=<demo@example.test>,<carol@example.test>\n")
    assert "quarantine-1" in text and EICAR in text
    assert os.stat(path).st_mode & 0o777 == 0o600
    wait_removed(local, 1)
    assert "quarantined as " + path in local.log("mda")
    assert not any("quarantine-1" in m for m in all_mail(local))
    assert not mail_of(local, BOB)  # 250 to qmgr: no bounce
    assert not mail_of(local, "carol@example.test")
    assert len(clamd.streams) == 1


def test_mda_defers_while_clamd_is_down_then_delivers(local):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, not listening
    local.set(clamd_address=f"127.0.0.1:{s.getsockname()[1]}")
    local.start("mda", "qmgr")
    sendmail(local, "mda-down-1", "fine")
    local.wait_log("mda", r"clamd: cannot connect to", timeout=15)
    wait_until(lambda: re.search(r"451 4\.7\.1 Virus scan unavailable", local.log("qmgr")), 15, "qmgr sees 451")
    assert not any("mda-down-1" in m for m in all_mail(local))
    assert local.spool_ids("queue"), "the message waits in the queue"
    # clamd back: the retry is scanned and delivered.
    c = FakeClamd()
    try:
        local.set(clamd_address=c.address)
        local.restart("mda")
        wait_until(lambda: any("mda-down-1" in m for m in all_mail(local)), 20, "delivered once clamd is back")
        assert any(b"mda-down-1" in d for d in c.streams)
    finally:
        c.stop()
        s.close()


def lda(f, token, body):
    msg = f"Received: from caller by other.test (Postfix) with ESMTP id 1; date\nSubject: {token}\n\n{token}\n{body}\n"
    return subprocess.run([binary("mda"), "-c", f.conf, "-d", "demo@example.test", "-f", "a@outside.test"],
                          input=msg.encode(), capture_output=True, timeout=30)


def test_lda_mode_scans(local, clamd):
    p = lda(local, "lda-virus-1", EICAR)
    assert p.returncode == 77 and b"Message refused: virus found: Eicar-Test-Signature" in p.stderr, p
    p = lda(local, "lda-clean-1", "fine")
    assert p.returncode == 0, p
    assert [m for m in all_mail(local) if "lda-clean-1" in m]
    assert not [m for m in all_mail(local) if "lda-virus-1" in m]
    assert len(clamd.streams) == 2
    local.set(mda_virus_action="quarantine")
    p = lda(local, "lda-virus-2", EICAR)
    assert p.returncode == 0, p
    assert glob.glob(os.path.join(local.keys["state_dir"], "mda", "quarantine", "*"))
    assert not [m for m in all_mail(local) if "lda-virus-2" in m]


def test_lda_mode_clamd_down_is_tempfail_unless_fail_open(local):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    try:
        local.set(clamd_address=f"127.0.0.1:{s.getsockname()[1]}")
        p = lda(local, "lda-down-1", "fine")
        assert p.returncode == 75 and b"Virus scan unavailable, try again later" in p.stderr, p
        assert not [m for m in all_mail(local) if "lda-down-1" in m]
        local.set(virus_scan_fail_open="yes")
        p = lda(local, "lda-down-2", "fine")
        assert p.returncode == 0, p
        [text] = [m for m in all_mail(local) if "lda-down-2" in m]
        header = text.split("\n\n", 1)[0]
        assert "\nX-Virus-Status: unscanned (clamd unavailable) at mx.test\nReceived: from caller" in header
    finally:
        s.close()


def test_fail_open_passes_unscanned_mail_marked(local):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    try:
        local.set(clamd_address=f"127.0.0.1:{s.getsockname()[1]}", virus_scan_fail_open="yes")
        local.start("mda", "qmgr", "smtpd")
        send(local, "open-1", "fine")  # accepted: no exception
        sendmail(local, "open-2", "fine")
        for token in ("open-1", "open-2"):
            wait_until(lambda: any(token in m for m in all_mail(local)), 15, f"{token} delivered")
            text = next(m for m in all_mail(local) if token in m)
            assert "\nX-Virus-Status: unscanned (clamd unavailable) at mx.test\n" in text.split("\n\n", 1)[0]
            assert "X-Virus-Scanned" not in text
        assert "accepted unscanned (virus_scan_fail_open)" in local.log("smtpd")
        assert "delivered unscanned (virus_scan_fail_open)" in local.log("mda")
    finally:
        s.close()
