"""GnuTLS on the event loop (common/event/tls.cpp) through tests/tools/tls-echo, with python ssl and gnutls-cli."""
import hashlib
import os
import re
import select
import selectors
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from ferry_harness import binary, make_cert


class EchoServer:
    """tests/tools/tls-echo in a temp dir; its stderr goes to a log file we poll."""

    def __init__(self, *args, cert=True, env=None):
        self.dir = tempfile.mkdtemp(prefix="fy-tls-", dir="/tmp")
        self.cert, self.key = make_cert(self.dir, "localhost") if cert else (None, None)
        self.log_path = os.path.join(self.dir, "echo.log")
        self.args = list(args)
        self.proc = None
        self.port = None

    def cmd(self, *extra):
        c = [binary("tls-echo")]
        if self.cert:
            c += ["-o", "tls_cert_file=" + self.cert, "-o", "tls_key_file=" + self.key]
        return c + self.args + list(extra)

    def start(self, *extra, timeout=10):
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd(*extra), stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log()
            m = re.search(r"listening on echo 127\.0\.0\.1:(\d+)", text)
            if m and re.search(r"\bready\b", text):
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("tls-echo exited: " + text)
            time.sleep(0.05)
        raise RuntimeError("tls-echo not ready: " + self.log())

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, pattern, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.log()):
                return
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in log:\n{self.log()}")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if getattr(self, "logf", None):
            self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def echo():
    s = EchoServer().start()
    yield s
    s.stop()


def client_ctx(**kw):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def tls_connect(port, ctx=None, timeout=10):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return (ctx or client_ctx()).wrap_socket(raw, server_hostname="localhost")


def recv_exactly(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(65536, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def assert_serves(port):
    """A fresh client still gets a byte-exact echo."""
    with tls_connect(port) as s:
        s.sendall(b"still alive\n")
        assert recv_exactly(s, 12) == b"still alive\n"


def test_python_ssl_handshake_and_echo(echo):
    with tls_connect(echo.port) as s:
        assert s.version() == "TLSv1.3"
        s.sendall(b"hello over tls\r\n")
        assert recv_exactly(s, 16) == b"hello over tls\r\n"
    echo.wait_log(r"TLS established: TLS1\.3 with AES-256-GCM")


def test_tls12_is_accepted(echo):
    with tls_connect(echo.port, client_ctx(maximum_version=ssl.TLSVersion.TLSv1_2)) as s:
        assert s.version() == "TLSv1.2"
        s.sendall(b"twelve\n")
        assert recv_exactly(s, 7) == b"twelve\n"
    echo.wait_log(r"TLS established: TLS1\.2 with ")


def test_certificate_verifies_for_its_name(echo):
    ctx = ssl.create_default_context(cafile=echo.cert)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", echo.port), timeout=10),
                         server_hostname="localhost") as s:
        s.sendall(b"v\n")
        assert recv_exactly(s, 2) == b"v\n"


def run_gnutls_cli(port, priority=None, data=b"ping from gnutls-cli\n", extra=()):
    """gnutls-cli as a real client: sends `data`, waits for its echo, then closes stdin."""
    cmd = ["gnutls-cli", "--insecure", "-p", str(port)] + list(extra)
    if priority:
        cmd.append("--priority=" + priority)
    cmd.append("127.0.0.1")
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    deadline = time.time() + 15
    sent = False
    while time.time() < deadline:
        if not sent and b"Handshake was completed" in out:
            p.stdin.write(data)
            p.stdin.flush()
            sent = True
        if sent and data in out.split(b"Handshake was completed", 1)[-1]:
            break
        if not sel.select(0.2):
            if p.poll() is not None:
                break
            continue
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        out += chunk
    p.stdin.close()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return p.returncode, out.decode(errors="replace")


def test_gnutls_cli_handshake_and_echo(echo):
    rc, out = run_gnutls_cli(echo.port)
    assert "Handshake was completed" in out, out
    assert "(TLS1.3-X.509)" in out, out
    assert "ping from gnutls-cli" in out.split("Simple Client Mode", 1)[1], out
    echo.wait_log(r"closed: connection closed by peer")


def test_large_transfers_both_ways_are_byte_exact(echo):
    # One thread drives both directions: an OpenSSL connection must not be used from two threads at once.
    size = 6 * 1024 * 1024
    data = os.urandom(size)
    with tls_connect(echo.port, timeout=30) as s:
        s.setblocking(False)
        got = bytearray()
        sent = 0
        deadline = time.time() + 60
        while len(got) < size and time.time() < deadline:
            want_read = True
            if sent < size:
                try:
                    sent += s.send(data[sent:sent + 100_000])  # uneven chunks: records and writes do not line up
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
            try:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
                want_read = False
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            if want_read:
                select.select([s], [s] if sent < size else [], [], 1)
        received = [bytes(got)]
    assert len(received[0]) == size
    assert hashlib.sha256(received[0]).hexdigest() == hashlib.sha256(data).hexdigest()


def test_many_clients_at_once(echo):
    socks = [tls_connect(echo.port) for _ in range(20)]
    try:
        for i, s in enumerate(socks):
            s.sendall(b"client %02d\n" % i)
        for i, s in enumerate(socks):
            assert recv_exactly(s, 10) == b"client %02d\n" % i
    finally:
        for s in socks:
            s.close()


def handshake_over_bio(port):
    """A TLS session driven through memory BIOs, so the test controls every byte on the socket."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname="localhost")
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            if out.pending:
                raw.sendall(out.read())
            data = raw.recv(65536)
            assert data, "server closed during handshake"
            inc.write(data)
    if out.pending:
        raw.sendall(out.read())
    return raw, obj, out


def test_peer_closing_mid_record(echo):
    raw, obj, out = handshake_over_bio(echo.port)
    obj.write(b"x" * 5000)
    record = out.read()
    assert len(record) > 5000
    raw.sendall(record[:len(record) // 2])  # half a record, then gone
    raw.close()
    echo.wait_log(r"closed: ")
    assert echo.alive()
    assert_serves(echo.port)


def test_partial_client_hello_then_close(echo):
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read()
    raw = socket.create_connection(("127.0.0.1", echo.port), timeout=10)
    raw.sendall(hello[:30])
    raw.close()
    echo.wait_log(r"TLS handshake failed")
    assert echo.alive()
    assert_serves(echo.port)


def test_garbage_instead_of_client_hello(echo):
    raw = socket.create_connection(("127.0.0.1", echo.port), timeout=10)
    raw.sendall(b"EHLO client.example\r\nGET / HTTP/1.0\r\n\r\n" * 20)
    got = b""
    while True:  # the server answers with at most an alert, then closes
        chunk = raw.recv(4096)
        if not chunk:
            break
        got += chunk
    raw.close()
    assert len(got) < 100
    assert b"EHLO" not in got
    echo.wait_log(r"TLS handshake failed")
    assert echo.alive()
    assert_serves(echo.port)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls10_and_tls11_refused_python(echo):
    ctx = client_ctx(minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let OpenSSL 3 offer TLS 1.0/1.1 at all
    with pytest.raises(ssl.SSLError) as e:
        tls_connect(echo.port, ctx)
    # The refusal must come from the server (a protocol_version alert), not from our own client.
    assert "PROTOCOL_VERSION" in str(e.value).upper() or "UNSUPPORTED_PROTOCOL" in str(e.value).upper(), str(e.value)
    assert "NO_PROTOCOLS_AVAILABLE" not in str(e.value).upper()
    echo.wait_log(r"TLS handshake failed")
    assert_serves(echo.port)


def test_tls10_and_tls11_refused_gnutls_cli(echo):
    rc, out = run_gnutls_cli(echo.port, priority="NORMAL:-VERS-ALL:+VERS-TLS1.0:+VERS-TLS1.1")
    assert rc != 0
    assert "Handshake was completed" not in out
    assert "Received alert [70]: Error in protocol version" in out, out
    # The same client with TLS 1.2 allowed succeeds: the refusal is about the version.
    rc, out = run_gnutls_cli(echo.port, priority="NORMAL:-VERS-ALL:+VERS-TLS1.2")
    assert "Handshake was completed" in out, out
    assert "(TLS1.2-X.509)" in out, out


def test_renegotiation_refused(echo):
    cmd = ["gnutls-cli", "--insecure", "--rehandshake", "-p", str(echo.port),
           "--priority=NORMAL:-VERS-ALL:+VERS-TLS1.2", "127.0.0.1"]
    p = subprocess.run(cmd, input=b"", capture_output=True, timeout=20)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert "Handshake was completed" in out, out
    assert "ReHandshake was completed" not in out, out
    assert "No renegotiation is allowed" in out, out
    echo.wait_log(r"closed: read error: client-initiated renegotiation refused")
    assert echo.alive()
    assert_serves(echo.port)


def test_handshake_timeout():
    s = EchoServer("-o", "tls_handshake_timeout=1s").start()
    try:
        raw = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        start = time.time()
        assert raw.recv(100) == b""  # the server gives up on a silent client
        assert 0.5 < time.time() - start < 5
        raw.close()
        s.wait_log(r"closed: timeout")
        assert_serves(s.port)
    finally:
        s.stop()


def test_starttls_discards_pipelined_plaintext():
    s = EchoServer("-s").start()
    try:
        raw = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        f = raw.makefile("rb")
        assert f.readline() == b"220 tls-echo ready\r\n"
        raw.sendall(b"plain line\r\n")
        assert f.readline() == b"plain line\r\n"
        # The injection: a command pipelined after STARTTLS in the same packet.
        raw.sendall(b"STARTTLS\r\nINJECTED\r\n")
        assert f.readline() == b"220 go ahead\r\n"
        tls = client_ctx().wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"after tls\r\n")
        # The echo over TLS is exactly what was sent over TLS: the injected line, had it been kept,
        # would be echoed first (the log records no data, so only the echo can tell).
        assert recv_exactly(tls, 11) == b"after tls\r\n"
        tls.sendall(b"end\r\n")
        assert recv_exactly(tls, 5) == b"end\r\n"
        tls.close()
        s.wait_log(r"TLS established")
    finally:
        s.stop()


def test_missing_certificate_is_a_clear_startup_error():
    s = EchoServer(cert=False)
    try:
        p = subprocess.run(s.cmd("-o", "tls_cert_file=/nonexistent/cert.pem", "-o", "tls_key_file=/nonexistent/key.pem"),
                           capture_output=True, timeout=10)
        assert p.returncode == 78
        err = p.stderr.decode()
        assert "cannot read tls_cert_file /nonexistent/cert.pem (No such file or directory)" in err, err
        assert "ready" not in err
    finally:
        s.stop()


def test_bad_key_is_a_clear_startup_error(tmp_path):
    cert, key = make_cert(str(tmp_path), "localhost")
    p = subprocess.run([binary("tls-echo"), "-o", "tls_cert_file=" + cert, "-o", "tls_key_file=" + cert],
                       capture_output=True, timeout=10)
    assert p.returncode == 78
    assert "cannot load TLS certificate " + cert in p.stderr.decode()
