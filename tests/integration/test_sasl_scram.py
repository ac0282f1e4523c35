"""SCRAM-SHA-256 (RFC 5802, RFC 7677) in ferry-imapd: gsasl as the real client, a python client for the refusals."""
import base64
import hashlib
import hmac
import os
import subprocess

from ferry_harness import LineConn

USER = "demo@example.test"
PASSWORD = "demo-secret"
OLD_HASH = "$6$rounds=1000$ferrysalt$eUUKMtep3fh7t/f8q9.X02f0aW7jtLEPUf4mlPorarbHFodlKRYyfDrt.7mSe0QTVR.xPu8.pVA.VyaFzEPqv/"


def start(f, **keys):
    if keys:
        f.set(**keys)
    f.start("imapd")
    return f.port("imap")


class Raw(LineConn):
    def command(self, line, tag):
        self.send(line + "\r\n")
        lines = []
        while True:
            lines.append(self.raw_line().decode())
            if lines[-1].startswith(tag + " "):
                return lines


def b64(data):
    return base64.b64encode(data).decode()


class Scram:
    """The client side of RFC 5802 with SHA-256, with hooks to break each message."""

    def __init__(self, user, password, nonce="fyclientnonce4711"):
        self.user, self.password, self.nonce = user, password, nonce
        self.first_bare = f"n={user},r={nonce}"

    def client_first(self):
        return "n,," + self.first_bare

    def client_final(self, server_first, nonce=None, cbind="biws"):
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        salt, iters = base64.b64decode(attrs["s"]), int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iters)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored = hashlib.sha256(client_key).digest()
        without_proof = f"c={cbind},r={nonce or attrs['r']}"
        auth = f"{self.first_bare},{server_first},{without_proof}".encode()
        sig = hmac.new(stored, auth, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.expected_final = "v=" + b64(hmac.new(server_key, auth, "sha256").digest())
        return f"{without_proof},p={b64(proof)}"


def authenticate(conn, scram, **breaks):
    """Runs AUTHENTICATE SCRAM-SHA-256 over a raw connection; the tagged line and the server-final seen."""
    conn.send("a1 AUTHENTICATE SCRAM-SHA-256\r\n")
    assert conn.raw_line().decode().startswith("+")
    conn.send(b64(scram.client_first().encode()) + "\r\n")
    line = conn.raw_line().decode()
    if not line.startswith("+ "):
        return line, None
    server_first = base64.b64decode(line[2:].strip()).decode()
    assert server_first.startswith("r=" + scram.nonce), server_first
    conn.send(b64(scram.client_final(server_first, **breaks).encode()) + "\r\n")
    line = conn.raw_line().decode()
    if not line.startswith("+ "):
        return line, None
    server_final = base64.b64decode(line[2:].strip()).decode()
    conn.send("\r\n")
    return conn.raw_line().decode(), server_final


def test_gsasl_logs_in_to_ferry_imapd_with_scram_sha_256(host):
    port = start(host)
    caps = Raw(port).command("c CAPABILITY", "c")[0]
    assert "AUTH=SCRAM-SHA-256" in caps
    p = subprocess.run(["gsasl", "--client", "--imap", "--connect", f"127.0.0.1:{port}", "--mechanism", "SCRAM-SHA-256",
                        "-a", USER, "-p", PASSWORD, "--no-starttls", "--quiet"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"login user={USER}" in host.log("imapd")


def test_gsasl_with_a_wrong_password_fails(host):
    port = start(host)
    p = subprocess.run(["gsasl", "--client", "--imap", "--connect", f"127.0.0.1:{port}", "--mechanism", "SCRAM-SHA-256",
                        "-a", USER, "-p", "wrong-secret", "--no-starttls", "--quiet"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert f"login user={USER}" not in host.log("imapd")


def test_scram_exchange_server_signature_and_refusals(host):
    port = start(host)
    c = Raw(port)
    c.raw_line()
    scram = Scram(USER, PASSWORD)
    tagged, final = authenticate(c, scram)
    assert tagged.startswith("a1 OK"), tagged
    assert final == scram.expected_final  # the server proves it knows the keys too

    c = Raw(port)
    c.raw_line()
    tagged, _ = authenticate(c, Scram(USER, "not-the-password"))
    assert tagged.startswith("a1 NO [AUTHENTICATIONFAILED]"), tagged

    # An unknown user gets a salt and fails the same way, not earlier.
    c = Raw(port)
    c.raw_line()
    tagged, _ = authenticate(c, Scram("nobody@example.test", PASSWORD))
    assert tagged.startswith("a1 NO [AUTHENTICATIONFAILED]"), tagged

    c = Raw(port)
    c.raw_line()
    tagged, _ = authenticate(c, Scram(USER, PASSWORD), nonce="fyclientnonce4711forged")
    assert tagged.startswith("a1 BAD"), tagged

    c = Raw(port)
    c.raw_line()
    tagged, _ = authenticate(c, Scram(USER, PASSWORD), cbind=b64(b"p=tls-unique,,"))
    assert tagged.startswith("a1 BAD"), tagged

    for bad in ["bm9uc2Vuc2U=", "not base64!", b64(b"p=tls-server-end-point,,n=x,r=abc"),
                b64(("n,,n=" + USER + ",r=" + "a" * 5000).encode())]:
        c = Raw(port)
        c.raw_line()
        c.send("a1 AUTHENTICATE SCRAM-SHA-256\r\n")
        assert c.raw_line().decode().startswith("+")
        c.send(bad + "\r\n")
        line = c.raw_line().decode()
        assert line.startswith("a1 BAD") or line.startswith("a1 NO"), (bad[:40], line)
        assert c.command("a2 NOOP", "a2")[-1].startswith("a2 OK")  # the session goes on


def test_an_account_without_scram_keys_must_set_its_password_again(host):
    # An imported hash (as accounts made before SCRAM keys were kept): SHA-512-crypt of "old-secret".
    host.admin("account", "add", "old@example.test", "--hash", OLD_HASH)
    port = start(host)
    c = Raw(port)
    c.raw_line()
    tagged, _ = authenticate(c, Scram("old@example.test", "old-secret"))
    assert tagged.startswith("a1 NO"), tagged
    assert "no SCRAM keys" in host.log("imapd")
    host.admin("account", "passwd", "old@example.test", input="old-secret\nold-secret\n")
    c = Raw(port)
    c.raw_line()
    tagged, _ = authenticate(c, Scram("old@example.test", "old-secret"))
    assert tagged.startswith("a1 OK"), tagged


# ---- ferry-smtpd (RFC 4954) and ferry-popd (RFC 5034): the same exchange, their own framing ----

def smtp_lines(conn):
    """One SMTP reply: (code, [texts])."""
    lines = []
    while True:
        line = conn.raw_line().decode().rstrip("\r\n")
        lines.append(line[4:])
        if line[3:4] != "-":
            return int(line[:3]), lines


def smtp_scram(port, user, password):
    """AUTH SCRAM-SHA-256 on a fresh submission connection: the final reply and the server signature."""
    c = LineConn(port)
    assert smtp_lines(c)[0] == 220
    c.send("EHLO client.test\r\n")
    code, caps = smtp_lines(c)
    assert code == 250 and "AUTH PLAIN LOGIN SCRAM-SHA-256" in caps, caps
    scram = Scram(user, password)
    c.send("AUTH SCRAM-SHA-256 " + b64(scram.client_first().encode()) + "\r\n")
    code, text = smtp_lines(c)
    assert code == 334, (code, text)
    c.send(b64(scram.client_final(base64.b64decode(text[0]).decode()).encode()) + "\r\n")
    code, text = smtp_lines(c)
    if code != 334:
        return code, text, None
    final = base64.b64decode(text[0]).decode()
    assert final == scram.expected_final
    c.send("\r\n")
    code, text = smtp_lines(c)
    return code, text, final


def test_gsasl_and_a_python_client_authenticate_to_ferry_smtpd(host):
    host.set(smtpd_submission_listen="127.0.0.1:0")
    host.start("smtpd")
    port = host.port("submission")
    p = subprocess.run(["gsasl", "--client", "--smtp", "--connect", f"127.0.0.1:{port}", "--mechanism", "SCRAM-SHA-256",
                        "-a", USER, "-p", PASSWORD, "--no-starttls", "--quiet"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"AUTH SCRAM-SHA-256 user={USER} ok" in host.log("smtpd")
    code, text, final = smtp_scram(port, USER, PASSWORD)
    assert code == 235 and final, (code, text)
    code, text, _ = smtp_scram(port, USER, "wrong-secret")
    assert (code, text[0][:5]) == (535, "5.7.8"), (code, text)


def test_ferry_popd_offers_and_checks_scram(host):
    host.start("popd")
    port = host.port("pop3")
    for password, want in ((PASSWORD, "+OK"), ("wrong-secret", "-ERR")):
        c = LineConn(port)
        assert c.raw_line().startswith(b"+OK")
        c.send("CAPA\r\n")
        caps = []
        while True:
            line = c.raw_line().decode().rstrip("\r\n")
            if line == ".":
                break
            caps.append(line)
        assert "SASL PLAIN LOGIN SCRAM-SHA-256" in caps, caps
        scram = Scram(USER, password)
        c.send("AUTH SCRAM-SHA-256 " + b64(scram.client_first().encode()) + "\r\n")
        line = c.raw_line().decode()
        assert line.startswith("+ "), line
        c.send(b64(scram.client_final(base64.b64decode(line[2:].strip()).decode()).encode()) + "\r\n")
        line = c.raw_line().decode()
        if line.startswith("+ "):
            assert base64.b64decode(line[2:].strip()).decode() == scram.expected_final
            c.send("\r\n")
            line = c.raw_line().decode()
        assert line.startswith(want), (password, line)
