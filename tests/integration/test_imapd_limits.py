"""ferry-imapd under hostile or heavy clients: session limits, trickled commands, pipelined floods, huge literals,
bad bytes, TLS garbage, over-long lines, and the memory of thousands of IDLE sessions."""
import fcntl
import os
import resource
import socket
import struct
import termios
import threading
import time

import pytest

from ferry_harness import LineConn, wait_until
from test_imapd import PASSWORD, USER, Raw, insecure, start


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_lines(r, n, timeout=60):
    """The next n lines of a raw connection, read in bulk (a line at a time would copy the buffer each time)."""
    r.s.settimeout(timeout)
    buf = bytearray(r.buf)
    lines = buf.count(b"\r\n")
    while lines < n:
        chunk = r.s.recv(1 << 20)
        assert chunk, bytes(buf[-200:])
        # Only the new bytes are counted (with the last old one, for a CRLF split between chunks):
        # counting the whole buffer each time is quadratic, minutes of CPU for a million lines.
        lines += (buf[-1:] + chunk).count(b"\r\n")
        buf += chunk
    parts = bytes(buf).split(b"\r\n", n)
    r.buf = parts[n]
    return parts[:n]


def unsent(sock):
    """Bytes this socket has queued that the peer has not taken (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def greeted(port, source="127.0.0.1"):
    r = Raw(port, source=source)
    line = r.raw_line()
    return r, line


def logged_in_raw(port):
    r, line = greeted(port)
    assert line.startswith(b"* OK")
    assert r.command(f"a1 LOGIN {USER} {PASSWORD}", "a1")[-1].startswith("a1 OK")
    return r


# ---- session limits ----

def test_max_sessions_is_exact(host):
    port = start(host, imapd_max_sessions="3", imapd_max_sessions_per_ip="0")
    held = [greeted(port) for _ in range(3)]
    assert all(line.startswith(b"* OK") for _, line in held)
    r, line = greeted(port)
    assert line.startswith(b"* BYE [UNAVAILABLE] too many connections"), line
    assert r.closed()
    host.wait_log("imapd", r"refusing connection from 127\.0\.0\.1: too many connections \(imapd_max_sessions\)")
    # A slot freed is a slot taken again.
    held[0][0].close()
    wait_until(lambda: greeted(port)[1].startswith(b"* OK"), timeout=10, what="a freed session slot")


def test_max_sessions_per_ip_is_exact(host):
    port = start(host, imapd_max_sessions="100", imapd_max_sessions_per_ip="2")
    held = [greeted(port) for _ in range(2)]
    assert all(line.startswith(b"* OK") for _, line in held)
    r, line = greeted(port)
    assert line == b"* BYE [UNAVAILABLE] too many connections from your address", line
    assert r.closed()
    # Another address is not counted with this one.
    r2, line = greeted(port, source="127.0.0.2")
    assert line.startswith(b"* OK")
    assert r2.command("a1 NOOP", "a1")[-1] == "a1 OK NOOP completed"


# ---- slow and fast clients ----

def test_a_trickled_command_misses_the_deadline(host):
    """One byte a second is never silence for the idle timeout, but it cannot hold the session."""
    port = start(host, imapd_command_deadline="2s", imapd_idle_timeout="30m")
    r = logged_in_raw(port)
    started = time.monotonic()
    line = b"a2 LIST \"\" " + b"x" * 200 + b"\r\n"
    r.s.settimeout(0.2)
    gone = False
    for b in line:
        try:
            r.s.sendall(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            gone = True
            break
        try:
            data = r.s.recv(65536)
            if not data:
                gone = True
                break
            r.buf += data
        except socket.timeout:
            pass
    assert gone or r.closed(timeout=10)
    assert time.monotonic() - started < 10
    assert b"* BYE command not complete in time" in r.buf
    host.wait_log("imapd", r"command not complete within imapd_command_deadline")


def test_waiting_between_commands_and_in_idle_is_no_deadline(host):
    port = start(host, imapd_command_deadline="1s")
    r = logged_in_raw(port)
    assert r.command("a2 SELECT INBOX", "a2")[-1].startswith("a2 OK")
    r.send("a3 IDLE\r\n")
    assert r.raw_line() == b"+ idling"
    # Three times the deadline without a byte: only the idle timeout may end this, and it is 30 minutes.
    assert not r.closed(timeout=3)
    assert r.command("DONE", "a3")[-1] == "a3 OK IDLE terminated"


def test_session_lifetime(host):
    port = start(host, imapd_session_lifetime="2s")
    r = logged_in_raw(port)
    assert r.closed(timeout=15)
    assert b"* BYE session lifetime exceeded" in r.buf


def test_a_pipelined_flood_of_noops_is_answered_in_full(host):
    port = start(host)
    pid = host.pid("imapd")
    r = logged_in_raw(port)
    before = rss_kb(pid)
    n = 10_000
    r.send("".join(f"n{i} NOOP\r\n" for i in range(n)))
    assert read_lines(r, n) == [f"n{i} OK NOOP completed".encode() for i in range(n)]
    assert r.command("z NOOP", "z")[-1] == "z OK NOOP completed"
    # The burst is 110 KB in and 250 KB out; what stays after it must be far less than a few copies.
    assert rss_kb(pid) - before < 4 * 1024


def test_a_client_that_does_not_read_cannot_make_the_server_buffer(host):
    """Commands are no longer taken while 1 MiB of replies waits; the rest stays in the sockets."""
    port = start(host)
    pid = host.pid("imapd")
    r = logged_in_raw(port)
    before = rss_kb(pid)
    n = 1_000_000  # 13 MB of commands, 27 MB of replies: buffered whole, RSS would grow by 40 MB
    burst = "".join(f"n{i} NOOP\r\n" for i in range(n)).encode()
    sender = threading.Thread(target=lambda: r.s.sendall(burst), daemon=True)
    sender.start()
    # The server stops taking input: our unsent bytes pile up and stay (or, unbounded, all are taken).
    wait_until(lambda: not sender.is_alive() or unsent(r.s) > 256 * 1024, timeout=120, what="the flood to back up")
    grown = rss_kb(pid) - before
    assert sender.is_alive(), "the server took the whole flood without its replies being read"
    assert grown < 8 * 1024, f"RSS grew {grown} KiB while the client did not read"
    # Reading now gets every reply, in order.
    lines = read_lines(r, n, timeout=300)
    assert lines[0] == b"n0 OK NOOP completed" and lines[-1] == f"n{n - 1} OK NOOP completed".encode()
    assert all(line.endswith(b" OK NOOP completed") for line in lines)
    sender.join(timeout=120)


# ---- bad input ----

def test_a_literal_over_the_limit_is_refused_unread(host):
    port = start(host)
    r = logged_in_raw(port)
    # Synchronising: refused before the client sends it; the session goes on.
    lines = r.command("a2 APPEND INBOX {99999999999}", "a2")
    assert lines[-1].startswith("a2 NO [TOOBIG]"), lines
    assert not any(line.startswith("+") for line in lines)
    assert r.command("a3 NOOP", "a3")[-1] == "a3 OK NOOP completed"
    # Non-synchronising beyond what the server would even skip: BAD, and the connection is closed.
    r.send("a4 APPEND INBOX {99999999999+}\r\nxxxx")
    assert r.raw_line().startswith(b"a4 BAD [TOOBIG]")
    assert r.closed()


def test_nul_and_bare_cr_in_a_command_line(host):
    port = start(host)
    r = logged_in_raw(port)
    r.send(b"a2 NO\0OP\r\n")
    assert r.raw_line().startswith(b"a2 BAD")
    r.send(b"a3 SELECT IN\rBOX\r\n")
    assert r.raw_line().startswith(b"a3 BAD")
    r.send(b"a4 SELECT \"IN\0BOX\"\r\n")  # a NUL in a quoted string is a syntax error, not a name
    assert r.raw_line().startswith(b"a4 BAD")
    # A bare LF ends a line as CRLF does (clients that send it exist).
    r.send(b"a5 NOOP\n")
    assert r.raw_line() == b"a5 OK NOOP completed"
    assert r.command("a6 NOOP", "a6")[-1] == "a6 OK NOOP completed"


def test_an_over_long_line_is_refused_and_the_server_lives_on(host):
    port = start(host)
    r = logged_in_raw(port)
    r.send(b"a2 NOOP " + b"x" * 100_000 + b"\r\n")
    assert r.raw_line().startswith(b"a2 BAD Line too long")
    assert r.closed()
    assert logged_in_raw(port).command("a9 NOOP", "a9")[-1] == "a9 OK NOOP completed"


def test_tls_garbage_on_the_imaps_port(host):
    host.tls()
    # A record that announces more than it sends stalls the handshake: tls_handshake_timeout ends it.
    host.set(imapd_tls_listen="127.0.0.1:0", tls_handshake_timeout="2s")
    start(host)
    port = host.port("imaps")
    for junk in (b"\x16\x03\x01\x00\x05hello", os.urandom(4096), b"a1 LOGIN x y\r\n"):
        c = LineConn(port)
        c.send(junk)
        assert c.closed(timeout=15)
    # The next real client is served.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with insecure().wrap_socket(s, server_hostname="mx.test") as t:
            assert t.recv(1024).startswith(b"* OK")
    assert host.procs["imapd"].poll() is None


# ---- memory of idle sessions ----

SESSIONS = 500
# Bytes of process memory one more IDLE session on the INBOX may cost. The bar is 10,000 sessions in
# 100 MiB, 10,485 bytes each with nothing for the process itself; 6 KiB leaves room for the process
# and for the allocator's rounding, and an index copy per session (this INBOX holds 300 messages,
# over 100 bytes each in memory) or a 16 KiB buffer per session fails it.
PER_SESSION_BOUND = 6 * 1024


def fill_inbox(f, n):
    md = f.maildir(USER)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    for i in range(n):
        with open(os.path.join(md, "new", f"1700000000.M{i}P1.mx.test,S=100"), "w") as fh:
            fh.write(f"From: a@example.org\nSubject: message number {i}\n\nbody {i}\n")


def open_idle(port, n, batch=50):
    """n sessions logged in, INBOX selected, IDLE: commands pipelined, every answer awaited, a batch at a
    time (the password checks of one address wait in a bounded queue)."""
    conns = []
    while len(conns) < n:
        fresh = []
        for _ in range(min(batch, n - len(conns))):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(f"a1 LOGIN {USER} {PASSWORD}\r\na2 SELECT INBOX\r\na3 IDLE\r\n".encode())
            fresh.append(s)
        for s in fresh:
            buf = b""
            while b"+ idling\r\n" not in buf:
                chunk = s.recv(65536)
                assert chunk, buf
                buf += chunk
        conns += fresh
    return conns


def test_memory_of_idle_sessions(host):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * SESSIONS + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need * 2), hard))  # inherited by ferry-imapd
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        pytest.skip("RLIMIT_NOFILE too low for this many sessions")
    fill_inbox(host, 300)
    # Checks in flight count against the address's failure limit: this test logs in from one address.
    port = start(host, imapd_max_sessions=str(SESSIONS + 100), imapd_max_sessions_per_ip="0",
                 auth_failure_delay="0", auth_max_failures=str(SESSIONS * 2))
    pid = host.pid("imapd")
    warm = open_idle(port, 20)  # the first sessions build the shared index and the allocator's pools
    base = rss_kb(pid)
    conns = open_idle(port, SESSIONS)
    grown = rss_kb(pid) - base
    per_session = grown * 1024 / SESSIONS
    print(f"imapd RSS {rss_kb(pid)} KiB with {SESSIONS + 20} IDLE sessions: {per_session:.0f} bytes per session")
    assert per_session < PER_SESSION_BOUND, f"{per_session:.0f} bytes per IDLE session"
    # They are all alive: one delivery reaches the last one.
    md = host.maildir(USER)
    with open(os.path.join(md, "new", "1700000001.M9P1.mx.test,S=10"), "w") as fh:
        fh.write("Subject: one more\n\nx\n")
    s = conns[-1]
    s.settimeout(10)
    buf = b""
    while b"* 301 EXISTS" not in buf:
        chunk = s.recv(65536)
        assert chunk, buf
        buf += chunk
    for c in warm + conns:
        c.close()
