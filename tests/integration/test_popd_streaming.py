"""ferry-popd under load: ten slow RETRs of 10 MB messages leave other logins served, memory bounded, bytes exact."""
import hashlib
import os
import re
import socket
import threading
import time

from ferry_harness import wait_until

PASSWORD = "stream-secret"
SIZE = 10_000_000           # bytes of each large message as stored
SLOW = 10                   # clients in the middle of a RETR of a large message
SMALL = 1000                # messages in the maildrop of the client that logs in meanwhile
# Well under the ten messages (100 MB) that whole-message reads would hold. Not sampled during logins:
# a yescrypt hash takes some 16 MB on each auth worker for a moment (auth_workers).
RSS_BOUND_KB = 2 * SIZE // 1024
CHUNK = 65536               # ferry-popd reads message files in pieces of this size (popd/session.cpp)


def account(n):
    return f"slow{n}@example.test"


OTHER = "other@example.test"


def wire(stored):
    """What RETR must send for a stored message (independent of popd/response.cpp): bare LF becomes CRLF,
    CRLF and bare CR stay, lines starting with '.' get one more, a last line without LF is ended, then '.'."""
    lines = stored.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    out = []
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        out.append((b"." + line if line.startswith(b".") else line) + b"\r\n")
    return b"".join(out) + b".\r\n"


def octets(stored):
    """The size LIST and STAT announce: the wire form before byte-stuffing, without the terminator."""
    return len(re.sub(rb"(^|\r\n)\.", rb"\1", wire(stored)[:-3], flags=re.M))


def large_body():
    """About SIZE bytes: lines of varying length in LF and CRLF, dotted lines, so chunk edges fall everywhere."""
    lines, total, i = [], 0, 0
    while total < SIZE:
        line = (b"." if i % 7 == 0 else b"") + b"x" * (i % 97) + (b"\r\n" if i % 5 == 0 else b"\n")
        lines.append(line)
        total += len(line)
        i += 1
    return b"".join(lines)


def large(n, body):
    return f"From: big@example.org\nTo: {account(n)}\nSubject: large {n}\n\n".encode() + body


def edges():
    """A message whose special bytes sit on the read-chunk boundaries: a dot right after one, a CRLF
    split across one, a bare CR before one, a NUL on one, and no final newline."""
    data = bytearray(b"Subject: edges\n\n" + b"a" * (4 * CHUNK))
    data[CHUNK - 1:CHUNK + 2] = b"\n.."        # a line starting with two dots begins at the boundary
    data[2 * CHUNK - 1:2 * CHUNK + 1] = b"\r\n"  # a stored CRLF split by the boundary
    data[3 * CHUNK - 1:3 * CHUNK + 1] = b"\r."   # a bare CR, then a dot not at a line start
    data[3 * CHUNK + 5] = 0
    data[4 * CHUNK - 2:4 * CHUNK] = b"\n."     # a dot line near the boundary
    return bytes(data) + b"\n.\nends without a newline"


SPECIAL = {
    "dots": b"Subject: dots\n\n.\n..\n...x\nmid.dot\n.",
    "nonl": b"Subject: no newline\n\nlast line without LF",
    "cr": b"Subject: bare CR\n\nbare\rCR\r\nand CRLF\nend\r",
    "nul": b"Subject: NUL\n\nbefore\x00after\n\x00\n",
    "edges": edges(),
}


def put(f, address, base, data):
    """Stores a message as ferry-mda names it (S= and W=)."""
    md = f.maildir(address)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    name = f"{base},S={len(data)},W={octets(data)}"
    with open(os.path.join(md, "new", name), "wb") as fh:
        fh.write(data)


class Conn:
    """A POP3 connection at the byte level; a small receive buffer keeps a slow reader slow."""

    def __init__(self, port, rcvbuf=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(120)
        self.s.connect(("127.0.0.1", port))
        self.buf = bytearray()
        assert self.line().startswith(b"+OK")

    def fill(self, n=65536):
        chunk = self.s.recv(n)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def until(self, marker):
        start = 0
        while (at := self.buf.find(marker, start)) < 0:
            start = max(0, len(self.buf) - len(marker))
            self.fill()
        out = bytes(self.buf[:at + len(marker)])
        del self.buf[:at + len(marker)]
        return out

    def line(self):
        return self.until(b"\r\n")[:-2]

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        return self.line()

    def login(self, address):
        assert self.cmd(f"USER {address}").startswith(b"+OK")
        reply = self.cmd(f"PASS {PASSWORD}")
        assert reply.startswith(b"+OK"), reply
        return reply


class RssPeak:
    """Samples VmRSS of a process until stopped, except while paused (a login's password hash)."""

    def __init__(self, pid):
        self.pid, self.peak = pid, 0
        self.done, self.sampling = threading.Event(), threading.Event()
        self.sampling.set()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            self.sampling.wait()
            with open(f"/proc/{self.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        self.peak = max(self.peak, int(line.split()[1]))
            time.sleep(0.02)

    def stop(self):
        self.done.set()
        self.sampling.set()
        self.thread.join()
        return self.peak


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def slow_retr(port, n, expected_digest, started, go, results):
    """Logs in, starts RETR 1 of the large message, reads a little and then nothing until `go`."""
    try:
        c = Conn(port, rcvbuf=32768)
        c.login(account(n))
        c.s.sendall(b"RETR 1\r\n")
        first = c.line()
        assert first.startswith(b"+OK"), first
        while len(c.buf) < 256 * 1024:
            c.fill()
        started[n] = len(c.buf)
        assert go.wait(300)
        body = c.until(b"\r\n.\r\n")
        results[n] = hashlib.sha256(body).hexdigest() == expected_digest
        assert c.cmd("QUIT").startswith(b"+OK")
    except Exception as e:  # noqa: BLE001 -- reported by the main thread
        results[n] = e


def test_login_and_small_retr_served_during_ten_large_retrs(ferry):
    f = ferry
    f.add_domain("example.test")
    f.add_account(OTHER, PASSWORD)
    digests, body = {}, large_body()
    for n in range(SLOW):
        f.add_account(account(n), PASSWORD)
        data = large(n, body)
        put(f, account(n), f"1700000000.M{n}P1Q1.large", data)
        digests[n] = hashlib.sha256(wire(data)).hexdigest()
    now = int(time.time())
    for i in range(SMALL):
        body = f"Subject: small {i}\n\n".encode() + b"some text of the small message\n" * 30
        put(f, OTHER, f"{now}.M{i}P2Q{i}.small", body)
    for key, data in SPECIAL.items():
        put(f, OTHER, f"{now + 1}.M0P3Q0.{key}", data)
    f.set(popd_max_sessions_per_ip="20", popd_max_sessions="50")
    f.start("popd")
    port = f.port("pop3")

    started, results, go = {}, {}, threading.Event()
    threads = [threading.Thread(target=slow_retr, args=(port, n, digests[n], started, go, results))
               for n in range(SLOW)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(started) + len(results) == SLOW, timeout=120, what="ten RETRs under way")
        assert not results, results
        # Every large RETR is in progress: each client holds a part of it and has not read on.
        assert all(got < SIZE for got in started.values()), started
        rss = RssPeak(f.pid("popd"))

        c = Conn(port)
        rss.sampling.clear()
        assert c.login(OTHER).startswith(b"+OK maildrop has %d messages" % (SMALL + len(SPECIAL)))
        wait_until(lambda: rss_kib(f.pid("popd")) < RSS_BOUND_KB, timeout=30,
                   what="the password hash's memory given back")
        rss.sampling.set()
        stat = c.cmd("STAT").split()
        assert stat[:2] == [b"+OK", str(SMALL + len(SPECIAL)).encode()]
        c.s.sendall(b"UIDL\r\n")
        uidl = c.until(b"\r\n.\r\n").split(b"\r\n")[1:-2]
        numbers = {line.split()[1].decode().rsplit(".", 1)[1]: int(line.split()[0]) for line in uidl}
        assert c.cmd(f"RETR {numbers['small']}").startswith(b"+OK")
        c.until(b"\r\n.\r\n")
        # The retrieved bytes are exact, byte-stuffing and line ends included.
        for key, data in SPECIAL.items():
            reply = c.cmd(f"RETR {numbers[key]}")
            assert reply == b"+OK %d octets" % octets(data), (key, reply)
            assert c.until(b"\r\n.\r\n") == wire(data), key
        assert c.cmd("QUIT").startswith(b"+OK")
        # The large RETRs are still where they were: the server never waited for them.
        assert not results, results
    finally:
        go.set()
        for t in threads:
            t.join(300)
    peak = rss.stop()
    assert all(results.get(n) is True for n in range(SLOW)), results
    assert peak < RSS_BOUND_KB, f"ferry-popd peak RSS {peak} KiB"


def test_read_ahead_keeps_replies_and_marks_exact(ferry):
    """RETRs one after the other are answered from the read-ahead; DELE, TOP and skipping still behave."""
    f = ferry
    f.add_domain("example.test")
    f.add_account(OTHER, PASSWORD)
    now = int(time.time())
    stored = [f"Subject: m{i}\n\n.dot line {i}\nbody {i}\n".encode() + b"x" * (i * 100) for i in range(1, 41)]
    for i, data in enumerate(stored):
        put(f, OTHER, f"{now}.M{i:03d}P4Q{i}.ahead", data)
    f.start("popd")
    c = Conn(f.port("pop3"))
    c.login(OTHER)
    c.s.sendall(b"UIDL\r\n")
    order = [int(line.split()[1].split(b".")[1][1:4]) for line in c.until(b"\r\n.\r\n").split(b"\r\n")[1:-2]]
    msg = {n + 1: stored[i] for n, i in enumerate(order)}
    # Pipelined: every reply in order, whether read ahead or not.
    c.s.sendall(b"RETR 1\r\nDELE 2\r\nRETR 2\r\nRETR 3\r\nTOP 4 0\r\nRETR 4\r\nRETR 30\r\nRETR 5\r\n")
    assert c.line() == b"+OK %d octets" % octets(msg[1])
    assert c.until(b"\r\n.\r\n") == wire(msg[1])
    assert c.line().startswith(b"+OK")
    assert c.line() == b"-ERR message 2 already deleted"
    for n in (3,):
        assert c.line() == b"+OK %d octets" % octets(msg[n])
        assert c.until(b"\r\n.\r\n") == wire(msg[n])
    assert c.line().startswith(b"+OK")
    assert c.until(b"\r\n.\r\n") == wire(msg[4].split(b"\n\n", 1)[0] + b"\n\n")
    for n in (4, 30, 5):
        assert c.line() == b"+OK %d octets" % octets(msg[n])
        assert c.until(b"\r\n.\r\n") == wire(msg[n])
    # Then one after the other, as a client with a round trip per message.
    for n in range(6, 41):
        assert c.cmd(f"RETR {n}") == b"+OK %d octets" % octets(msg[n])
        assert c.until(b"\r\n.\r\n") == wire(msg[n])
    assert c.cmd("QUIT").startswith(b"+OK")
    assert len(f.mail(OTHER)) == 39
