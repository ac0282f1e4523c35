"""ferry-smtpd's rspamd client (HTTP POST /checkv2) against a scripted rspamd: its score joins ours (the
test RSPAMD), the envelope goes in the request's header fields, and an rspamd that is down, silent
or answers nonsense counts nothing (logged) and never holds the message. rspamd itself is not
needed: the JSON reader is unit-tested and fuzzed (tests/unit/test_rspamd.cpp, fuzz-rspamd-reply)."""
import glob
import json
import re
import socket
import threading
import time

import pytest

from test_spam import GTUBE, delivered, send, spam_fields
from ferry_harness import wait_until


class ScriptedRspamd:
    """Answers POST /checkv2 as rspamd does: score 12.5 ("reject") when the message holds "rspamd-spam",
    1.5 otherwise. `mode`: "ok", "silent" (reads, never answers), "500", "garbage" (200 with no JSON)."""

    def __init__(self, mode="ok"):
        self.mode = mode
        self.requests = []
        self.held = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        data = b""
        while b"\r\n\r\n" not in data:
            d = conn.recv(4096)
            if not d:
                return conn.close()
            data += d
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        fields = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        length = int(dict((k.lower(), v) for k, v in fields)["content-length"])
        while len(body) < length:
            d = conn.recv(65536)
            if not d:
                break
            body += d
        self.requests.append((lines[0], fields, body))
        if self.mode == "silent":
            self.held.append(conn)
            return
        if self.mode == "500":
            reply = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
        elif self.mode == "garbage":
            reply = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!"
        else:
            spam = b"rspamd-spam" in body
            doc = json.dumps({
                "is_skipped": False, "score": 12.5 if spam else 1.5, "required_score": 15.0,
                "action": "reject" if spam else "no action",
                "symbols": {"FAKE_SPAM": {"name": "FAKE_SPAM", "score": 11.0, "options": ["x"]},
                            "MISSING_DATE": {"name": "MISSING_DATE", "score": 1.5}} if spam else
                           {"MISSING_DATE": {"name": "MISSING_DATE", "score": 1.5}},
                "messages": {}, "message-id": "undef", "time_real": 0.01, "milter": {"remove_headers": {"X-Spam": 0}},
            }).encode()
            reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\nServer: rspamd/3.4\r\nContent-Type: application/json\r\n" + \
                b"Content-Length: " + str(len(doc)).encode() + b"\r\n\r\n" + doc
        conn.sendall(reply)
        conn.close()

    def stop(self):
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture
def host(host):
    """The spam check on (the harness turns it off for other tests)."""
    del host.keys["spam_filter"]
    host._write_conf()
    return host


@pytest.fixture
def rspamd():
    made = []

    def make(mode="ok"):
        made.append(ScriptedRspamd(mode))
        return made[-1]
    yield make
    for r in made:
        r.stop()


def folder(f, token):
    for d in ("new", "cur"):
        for path in glob.glob(f"{f.maildir('demo@example.test')}/.Junk/{d}/*"):
            if token in open(path, errors="replace").read():
                return "Junk"
    return "INBOX"


def test_rspamd_score_joins_ours(host, rspamd):
    r = rspamd()
    host.set(rspamd_address=r.address, rspamd_timeout="5s")
    host.start("mda", "qmgr", "smtpd")
    send(host, "rspamd-spam-1", body="rspamd-spam")
    assert spam_fields(delivered(host, "rspamd-spam-1")) == [
        "X-Spam-Score: 12.5", "X-Spam-Status: Yes, score=12.5 required=5.0 tests=RSPAMD"]
    assert folder(host, "rspamd-spam-1") == "Junk"
    assert re.search(r'spam: rspamd: score=12\.5 required=15\.0 action="reject" symbols=2$', host.log("smtpd"), re.M)
    # A clean message: rspamd's 1.5, INBOX; with GTUBE our own rule adds to rspamd's.
    send(host, "rspamd-clean-1", body="hello")
    assert spam_fields(delivered(host, "rspamd-clean-1")) == [
        "X-Spam-Score: 1.5", "X-Spam-Status: No, score=1.5 required=5.0 tests=RSPAMD"]
    assert folder(host, "rspamd-clean-1") == "INBOX"
    send(host, "rspamd-gtube-1", body=GTUBE)
    assert spam_fields(delivered(host, "rspamd-gtube-1"))[0] == "X-Spam-Score: 1001.5"
    # The request: POST /checkv2 with the envelope in its header, the message with our Received: first.
    first, fields, body = r.requests[0]
    assert first == "POST /checkv2 HTTP/1.1"
    names = dict(fields)
    assert names["IP"] == "127.0.0.1" and names["Helo"] == "client.test" and names["From"] == "a@outside.test"
    assert [v for k, v in fields if k == "Rcpt"] == ["demo@example.test"]
    assert re.fullmatch(r"[0-9A-F]{16}", names["Queue-Id"])
    assert "User" not in names
    assert body.startswith(b"Received: ") and b"rspamd-spam-1" in body
    assert int(names["Content-Length"]) == len(body)


@pytest.mark.parametrize("mode,logged", [
    ("silent", "spam: rspamd: no answer within rspamd_timeout, counted as nothing"),
    ("500", 'spam: rspamd: HTTP status "500 Internal Server Error", counted as nothing'),
    ("garbage", "spam: rspamd: unexpected answer: object expected at octet 0, counted as nothing"),
])
def test_rspamd_that_cannot_say_counts_nothing(host, rspamd, mode, logged):
    r = rspamd(mode)
    host.set(rspamd_address=r.address, rspamd_timeout="1s")
    host.start("mda", "qmgr", "smtpd")
    t = time.monotonic()
    send(host, f"rspamd-{mode}", body="rspamd-spam")
    assert time.monotonic() - t < 10
    assert spam_fields(delivered(host, f"rspamd-{mode}")) == [
        "X-Spam-Score: 0.0", "X-Spam-Status: No, score=0.0 required=5.0 tests=none"]
    wait_until(lambda: logged in host.log("smtpd"), 5, "the log line")


def test_rspamd_down_counts_nothing(host):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    host.set(rspamd_address=f"127.0.0.1:{port}", rspamd_timeout="2s")
    host.start("mda", "qmgr", "smtpd")
    send(host, "rspamd-down", body=GTUBE)
    assert spam_fields(delivered(host, "rspamd-down")) == [
        "X-Spam-Score: 1000.0", "X-Spam-Status: Yes, score=1000.0 required=5.0 tests=GTUBE"]
    assert f"spam: rspamd: cannot connect to 127.0.0.1:{port}: connect (Connection refused), counted as nothing" \
        in host.log("smtpd")
