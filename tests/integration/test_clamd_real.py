"""The virus check end to end with Debian's clamd (clamav-daemon): the test starts it on a Unix
socket in its own directory, with a database holding one local EICAR signature (no freshclam, no
download), and stops it by PID. ferry-smtpd refuses EICAR in the body, in a base64 attachment and
zipped inside one with 554 5.7.1 naming the signature; clean mail is delivered; a stopped clamd means
451 and nothing queued. ferry-mda scans what came through ferry-sendmail."""
import base64
import io
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import zipfile

import pytest

from ferry_harness import binary, wait_until

EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
# clamd marks a signature of a database that is not ClamAV's own as .UNOFFICIAL.
SIGNATURE = "Ferry-Test-EICAR.UNOFFICIAL"


def clamd_binary():
    return shutil.which("clamd") or next((p for p in ("/usr/sbin/clamd",) if os.access(p, os.X_OK)), None)


def ping(path):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(path)
            s.sendall(b"zPING\0")
            return s.recv(16) == b"PONG\0"
    except OSError:
        return False


class Clamd:
    """clamd in the foreground with a private clamd.conf and a one-signature database."""

    def __init__(self, program):
        self.dir = tempfile.mkdtemp(prefix="fy-clamd-", dir="/tmp")
        db = os.path.join(self.dir, "db")
        os.mkdir(db)
        # An extended (.ndb) signature: "name:target type (0, any file):offset (*, anywhere):hex".
        with open(os.path.join(db, "ferry-eicar.ndb"), "w") as f:
            f.write(f"Ferry-Test-EICAR:0:*:{EICAR.encode().hex()}\n")
        self.address = os.path.join(self.dir, "clamd.sock")
        self.log = os.path.join(self.dir, "clamd.log")
        conf = os.path.join(self.dir, "clamd.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "Foreground yes",
                f"LocalSocket {self.address}",
                f"DatabaseDirectory {db}",
                f"TemporaryDirectory {self.dir}",
                f"LogFile {self.log}",
                "LogTime yes",
                "ScanMail yes",
                "ScanArchive yes",
                "StreamMaxLength 30M",
                "Bytecode no",
                "",
            ]))
        started = time.monotonic()
        self.proc = subprocess.Popen([program, "--config-file", conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "stderr"), "w"))
        try:
            wait_until(lambda: self.proc.poll() is not None or ping(self.address), 60, "clamd answers PING")
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError("clamd exited: " + open(os.path.join(self.dir, "stderr")).read()[-2000:])
        self.startup = time.monotonic() - started

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def clamd():
    program = clamd_binary()
    if not program:
        pytest.skip("clamd is not installed (Debian package clamav-daemon)")
    c = Clamd(program)
    yield c
    c.cleanup()


@pytest.fixture
def scanning(host, clamd):
    host.add_account("bob@example.test", "bob-secret")
    host.set(clamd_address=clamd.address, clamd_timeout="20s")
    host.start("mda", "qmgr", "smtpd")
    return host


def all_mail(f, address="demo@example.test"):
    return [open(p, errors="replace").read() for p in f.mail(address)]


def send(f, message):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), local_hostname="client.test", timeout=60) as s:
        s.sendmail("a@outside.test", ["demo@example.test"], message)


def refused(f, message):
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(f, message)
    return e.value.smtp_code, e.value.smtp_error.decode()


def with_attachment(token, name, payload, ctype):
    b64 = base64.encodebytes(payload).decode().replace("\n", "\r\n")
    return (f"From: a@outside.test\r\nSubject: {token}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            f"--b1\r\nContent-Type: text/plain\r\n\r\n{token}: see the attachment\r\n"
            f"--b1\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{b64}--b1--\r\n")


def zipped(name, content):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, content)
    return buf.getvalue()


def test_clamd_starts_quickly_with_one_signature(clamd):
    # One signature loads in well under a second here (ClamAV's full database takes a minute and
    # about 1 GB): each test can afford its own clamd.
    assert clamd.startup < 10, clamd.startup


def test_eicar_plain_attached_and_zipped_is_refused(scanning):
    want = (554, f"5.7.1 Message refused: virus found: {SIGNATURE}")
    assert refused(scanning, f"From: a@outside.test\r\nSubject: plain-1\r\n\r\n{EICAR}\r\n") == want
    attached = with_attachment("attached-1", "eicar.com", EICAR.encode(), "application/octet-stream")
    assert EICAR not in attached  # only clamd's MIME decoding can find it
    assert refused(scanning, attached) == want
    archive = zipped("eicar.com", EICAR)
    assert EICAR.encode() not in archive  # deflated: only clamd's unzip can find it
    assert refused(scanning, with_attachment("zipped-1", "eicar.zip", archive, "application/zip")) == want
    assert scanning.log("smtpd").count(f"refused by clamd") == 3
    # Clean mail, with a clean zip too, is delivered, marked as scanned here.
    send(scanning, with_attachment("clean-1", "notes.zip", zipped("notes.txt", "nothing to see\n"), "application/zip"))
    wait_until(lambda: any("clean-1" in m for m in all_mail(scanning)), 20, "clean-1 delivered")
    text = next(m for m in all_mail(scanning) if "clean-1" in m)
    assert "\nX-Virus-Scanned: clamd at mx.test\n" in text.split("\n\n", 1)[0]
    assert not any(t in m for m in all_mail(scanning) for t in ("plain-1", "attached-1", "zipped-1"))
    # ferry-qmgr removes the queue file after ferry-mda's reply, so a moment after the file shows up.
    wait_until(lambda: scanning.spool_ids("queue") == [], 20, "the queue emptied")


def test_clamd_stopped_means_451_and_nothing_queued(scanning, clamd):
    send(scanning, "From: a@outside.test\r\nSubject: before-1\r\n\r\nfine\r\n")
    wait_until(lambda: any("before-1" in m for m in all_mail(scanning)), 20, "before-1 delivered")
    # qmgr removes the queue file just after the delivery; the check below is of after-1 alone.
    wait_until(lambda: scanning.spool_ids("queue") == [], 20, "before-1 removed from the queue")
    clamd.stop()
    assert refused(scanning, "From: a@outside.test\r\nSubject: after-1\r\n\r\nfine\r\n") == (
        451, "4.7.1 Virus scan unavailable, try again later")
    assert scanning.spool_ids("queue") == [] and scanning.spool_ids("incoming") == []
    assert "after-1" not in scanning.log("qmgr")


def test_mda_scans_sendmail_mail_with_real_clamd(scanning):
    def sendmail(token, body):
        msg = f"From: bob@example.test\nSubject: {token}\n\n{body}\n"
        p = subprocess.run([binary("sendmail"), "-C", scanning.conf, "-f", "bob@example.test", "demo@example.test"],
                           input=msg, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
    sendmail("local-virus-1", EICAR)
    sendmail("local-clean-1", "fine")
    wait_until(lambda: any("local-clean-1" in m for m in all_mail(scanning)), 20, "local-clean-1 delivered")
    wait_until(lambda: any("local-virus-1" in m for m in all_mail(scanning, "bob@example.test")), 20, "the bounce")
    bounce = next(m for m in all_mail(scanning, "bob@example.test") if "local-virus-1" in m)
    assert f"virus found: {SIGNATURE}" in bounce
    assert not any("local-virus-1" in m for m in all_mail(scanning))
