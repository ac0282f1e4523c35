"""Large messages stream through qmgr, mda and popd with bounded buffers: their RSS stays small."""
import hashlib
import smtplib
import socket
import threading
import time

from ferry_harness import wait_until

MESSAGES = 20
SIZE = 10_000_000            # bytes of each message body
SENDERS = 4                  # concurrent SMTP sessions
ACCOUNTS = 4                 # one POP3 session each, all at once
BOUND_KB = 40 * 1024         # peak RSS allowed to each daemon (whole messages in memory need ~100-200 MB)
PASSWORD = "big-secret"


def account(n):
    return f"big{n}@example.test"


def body(n):
    """About SIZE bytes in 78-character lines, some starting with a dot, with a unique first line."""
    line = b"0123456789" * 7 + b"abcdef\r\n"
    dotted = b"." + line[1:]
    block = (line * 9 + dotted) * 100
    head = (f"From: sender@outside.test\r\nTo: {account(n % ACCOUNTS)}\r\nSubject: big {n}\r\n\r\n"
            f"message {n}\r\n").encode()
    return head + block * (SIZE // len(block))


class Peaks:
    """Samples VmRSS of some processes until stopped; VmHWM (the kernel's own peak) is read at the end."""

    def __init__(self, pids):
        self.pids = pids
        self.rss = {name: 0 for name in pids}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @staticmethod
    def field(pid, key):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def run(self):
        while not self.stop.is_set():
            for name, pid in self.pids.items():
                self.rss[name] = max(self.rss[name], self.field(pid, "VmRSS"))
            time.sleep(0.05)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return {name: max(self.rss[name], self.field(pid, "VmHWM")) for name, pid in self.pids.items()}


def send_some(port, numbers, errors):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
            s.ehlo("client.test")
            for n in numbers:
                s.sendmail("sender@outside.test", [account(n % ACCOUNTS)], body(n))
    except Exception as e:  # noqa: BLE001 -- reported by the main thread
        errors.append(e)


def read_until(sock, buf, marker):
    """(bytes before marker, rest of buf) reading from sock as needed."""
    start = 0
    while True:
        at = buf.find(marker, start)
        if at >= 0:
            return bytes(buf[:at]), buf[at + len(marker):]
        start = max(0, len(buf) - len(marker))
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk


def login(port, n_account):
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    buf = bytearray()
    line, buf = read_until(s, buf, b"\r\n")
    assert line.startswith(b"+OK"), line
    s.sendall(f"USER {account(n_account)}\r\nPASS {PASSWORD}\r\n".encode())
    for _ in range(2):
        line, buf = read_until(s, buf, b"\r\n")
        assert line.startswith(b"+OK"), line
    return s, buf


def retrieve_all(s, buf, n_account, count, got, errors):
    """Every RETR sent at once (RFC 2449 PIPELINING), then the replies read in order."""
    try:
        s.sendall(("".join(f"RETR {i}\r\n" for i in range(1, count + 1)) + "QUIT\r\n").encode())
        for _ in range(count):
            line, buf = read_until(s, buf, b"\r\n")
            assert line.startswith(b"+OK"), line
            data, buf = read_until(s, buf, b"\r\n.\r\n")
            got.append((n_account, int(line.split()[1]), data + b"\r\n"))
        s.close()
    except Exception as e:  # noqa: BLE001
        errors.append(e)


def test_twenty_large_messages_pass_with_bounded_memory(ferry):
    f = ferry
    f.add_domain("example.test")
    for n in range(ACCOUNTS):
        f.add_account(account(n), PASSWORD)
    f.set(message_size_limit=2 * SIZE)
    # Everything is queued before qmgr and mda start, so all 20 are in flight to the mda at once.
    f.start("smtpd")
    errors = []
    senders = [threading.Thread(target=send_some, args=(f.port("smtp"), range(k, MESSAGES, SENDERS), errors))
               for k in range(SENDERS)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    assert not errors, errors
    assert len(f.spool_ids("queue")) == MESSAGES

    f.start("mda", "qmgr")
    peaks = Peaks({"qmgr": f.pid("qmgr"), "mda": f.pid("mda")})
    wait_until(lambda: sum(len(f.mail(account(n))) for n in range(ACCOUNTS)) == MESSAGES, timeout=300,
               what="every message delivered")
    wait_until(lambda: not f.spool_ids("queue"), timeout=60, what="an empty queue")
    delivery = peaks.finish()

    f.start("popd")
    sessions = [login(f.port("pop3"), n) for n in range(ACCOUNTS)]
    # Password hashing at login needs memory of its own (and frees it): the peak counts from here.
    with open(f"/proc/{f.pid('popd')}/clear_refs", "w") as fh:
        fh.write("5")
    peaks = Peaks({"popd": f.pid("popd")})
    got = []
    readers = [threading.Thread(target=retrieve_all, args=(*sessions[n], n, MESSAGES // ACCOUNTS, got, errors))
               for n in range(ACCOUNTS)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    pop = peaks.finish()
    assert not errors, errors

    # Every message came back whole: the unstuffed body is what was sent, after the trace headers.
    assert len(got) == MESSAGES
    sent = {hashlib.sha256(body(n)).hexdigest(): n for n in range(MESSAGES)}
    for n_account, octets, data in got:
        unstuffed = data.replace(b"\r\n..", b"\r\n.")
        assert len(unstuffed) == octets
        header_end = unstuffed.index(b"\r\n\r\n") + 4
        start = unstuffed.index(b"From: sender@outside.test\r\n")
        assert start < header_end
        digest = hashlib.sha256(unstuffed[start:]).hexdigest()
        assert digest in sent, f"a message for {account(n_account)} came back altered"
        assert sent.pop(digest) % ACCOUNTS == n_account
    assert not sent

    peak = {**delivery, **pop}
    print("peak RSS (kB):", peak)
    for name, kb in peak.items():
        assert kb < BOUND_KB, f"ferry-{name} peaked at {kb} kB RSS, over {BOUND_KB} kB"
