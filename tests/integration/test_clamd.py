"""The clamd check of ferry-smtpd against a small fake clamd speaking INSTREAM (the real clamd needs
a signature database, which cannot be downloaded here): EICAR is refused with 554 5.7.1 naming the
signature and never delivered, clean mail passes with X-Virus-Scanned, the message comes in
chunks, and a clamd that is down or silent means 451 4.7.1, never an unscanned delivery."""
import os
import smtplib
import socket
import struct
import threading

import pytest

from ferry_harness import wait_until

EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class FakeClamd:
    """Answers INSTREAM like clamd: "stream: Eicar-Test-Signature FOUND" when the stream holds the
    EICAR string, "stream: OK" otherwise; `silent` reads the stream and never answers."""

    def __init__(self, unix_path=None, silent=False):
        self.silent = silent
        self.chunks = []  # sizes of the chunks of the last stream
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
            if self.silent:
                self.held.append(conn)
                return
            found = EICAR.encode() in data
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
    assert "\nX-Virus-Scanned: clamd\n" in text.split("\n\n", 1)[0] + "\n"
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
