"""ferry-smtpd with TLS and AUTH: STARTTLS, implicit TLS (smtps), AUTH PLAIN/LOGIN, submission rules, privileges."""
import base64
import os
import pwd
import re
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from ferry_harness import SmtpClient

DEMO = "demo@example.test"
PASSWORD = "demo-secret"
OTHER = "other@example.test"


def ctx():
    """A client context that trusts the test's self-signed certificate blindly."""
    return ssl._create_unverified_context()


@pytest.fixture
def tlshost(ferry):
    """A certificate, example.test with two accounts, smtp + submission + smtps on port 0; nothing started."""
    ferry.tls()
    ferry.add_domain("example.test")
    ferry.add_account(DEMO, PASSWORD)
    ferry.add_account(OTHER, "other-secret")
    ferry.set(smtpd_submission_listen="127.0.0.1:0", smtpd_smtps_listen="127.0.0.1:0")
    return ferry


@pytest.fixture
def full(tlshost):
    tlshost.start("mda", "qmgr", "smtpd")
    return tlshost


@pytest.fixture
def smtpd(tlshost):
    """smtpd alone: accepted messages stay in spool/queue, where the test can read them."""
    tlshost.start("smtpd")
    return tlshost


class Client(SmtpClient):
    """The raw SMTP client, able to switch its socket to TLS."""

    def __init__(self, f, service="smtp", implicit=False, timeout=15):
        super().__init__(f.port(service), timeout, wrap=ctx().wrap_socket if implicit else None)

    def ehlo(self):
        code, lines = self.cmd("EHLO client.test")
        assert code == 250, lines
        return lines[1:]

    def starttls(self):
        code, lines = self.cmd("STARTTLS")
        assert code == 220, lines
        self.upgrade()

    def upgrade(self):
        assert self.buf == b"", "bytes after the 220 in the clear: %r" % self.buf
        self.sock = ctx().wrap_socket(self.sock)

    def nothing_pending(self, wait=0.7):
        """True when the server sends nothing more within `wait` seconds."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(4096)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        finally:
            self.sock.settimeout(self.timeout)
        self.buf += data
        return False


def plain_ir(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


def b64(s):
    return base64.b64encode(s.encode()).decode()


def login(f, service="submission", user=DEMO, password=PASSWORD):
    c = Client(f, service, implicit=service == "smtps")
    if service != "smtps":
        c.ehlo()
        c.starttls()
    c.ehlo()
    assert c.cmd("AUTH PLAIN " + plain_ir(user, password)) == (235, ["2.7.0 Authentication successful"])
    return c


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


def message(frm, to, token):
    return f"From: {frm}\r\nTo: {to}\r\nSubject: {token}\r\n\r\n{token}\r\n"


# --- STARTTLS ------------------------------------------------------------------------------------

def test_swaks_starttls_delivers(full):
    p = subprocess.run(["swaks", "--server", f"127.0.0.1:{full.port('smtp')}", "--to", DEMO,
                        "--from", "x@outside.test", "--tls", "--body", "swaks-tls-body"],
                       capture_output=True, text=True, timeout=60)
    assert "TLS started" in p.stdout, p.stdout
    assert re.search(r"<~  250 2\.0\.0 Ok: queued as", p.stdout), p.stdout
    text = read(full.wait_mail(DEMO)[0])
    assert b"swaks-tls-body" in text
    assert re.search(rb"^Received: from \S+ \(unknown \[127\.0\.0\.1\]\)\n\t\(using TLS1\.[23] with [^)]+\)\n"
                     rb"\tby mx\.test \(ferry\) with ESMTPS id [0-9A-F]+\n", text, re.M), text[:400]
    full.wait_log("smtpd", r"\[127\.0\.0\.1\]: STARTTLS: TLS1\.[23] with ")


def test_smtplib_starttls_delivers(full):
    with smtplib.SMTP("127.0.0.1", full.port("smtp"), timeout=15) as s:
        s.ehlo("client.test")
        assert s.has_extn("starttls")
        s.starttls(context=ctx())
        s.ehlo("client.test")
        assert not s.has_extn("starttls")  # RFC 3207 4.2: not offered again
        s.sendmail("x@outside.test", [DEMO], message("x@outside.test", DEMO, "smtplib-starttls"))
    assert b"smtplib-starttls" in read(full.wait_mail(DEMO)[0])


def test_starttls_resets_the_session(smtpd):
    c = Client(smtpd)
    c.ehlo()
    assert c.cmd("MAIL FROM:<x@outside.test>")[0] == 250
    c.starttls()
    assert c.cmd("RCPT TO:<demo@example.test>")[0] == 503  # MAIL was forgotten
    assert c.cmd("MAIL FROM:<x@outside.test>") == (503, ["5.5.1 Error: send HELO/EHLO first"])  # so was EHLO
    caps = c.ehlo()
    assert "STARTTLS" not in caps
    assert c.cmd("STARTTLS") == (503, ["5.5.1 Error: TLS already active"])
    assert c.cmd("MAIL FROM:<x@outside.test>")[0] == 250


def test_starttls_with_an_argument_is_501(smtpd):
    c = Client(smtpd)
    c.ehlo()
    assert c.cmd("STARTTLS now")[0] == 501
    c.starttls()  # and the session still can
    c.ehlo()


@pytest.mark.parametrize("injected", ["RSET", "MAIL FROM:<x@y.test>", "HELP"])
def test_starttls_injection_is_discarded(smtpd, injected):
    c = Client(smtpd)
    c.ehlo()
    c.send(f"STARTTLS\r\n{injected}\r\n")  # one write: the classic CVE-2011-0411 injection
    assert c.reply()[0] == 220
    c.upgrade()  # fails if a reply to the injected command came in the clear
    # Before we send anything over TLS, nothing may be waiting: a reply here answers the injection.
    assert c.nothing_pending(wait=1.0), "reply to the injected command over TLS: %r" % c.buf
    # The state is clean: no EHLO and no MAIL survived.
    assert c.cmd("RCPT TO:<demo@example.test>") == (503, ["5.5.1 Error: need MAIL command"])
    c.ehlo()
    assert c.cmd("RCPT TO:<demo@example.test>")[0] == 503
    # MAIL right after the post-TLS EHLO: 250, no transaction ("nested MAIL command") left by the injection.
    assert c.cmd("MAIL FROM:<x@outside.test>") == (250, ["2.1.0 Ok"])
    assert c.cmd("RCPT TO:<demo@example.test>") == (250, ["2.1.5 Ok"])
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("NOOP")[0] == 250
    assert c.nothing_pending(wait=0.3), "an extra reply: %r" % c.buf
    log = smtpd.log("smtpd")
    assert not re.search(r"reject: (?!RCPT from \[127\.0\.0\.1\]: 503 5\.5\.1 Error: need MAIL command$)", log, re.M), log
    assert "y.test" not in log, log


def test_starttls_injection_of_a_partial_line_is_discarded(smtpd):
    # A half line before the handshake must not be completed by what the client sends over TLS.
    c = Client(smtpd)
    c.ehlo()
    c.send("STARTTLS\r\nMAIL FRO")
    assert c.reply()[0] == 220
    c.upgrade()
    assert c.cmd("M:<x@y.test>")[0] == 500  # "M:<x@y.test>" alone, not "MAIL FROM:<x@y.test>"


def test_auth_before_tls_is_offered_on_loopback_by_default(smtpd):
    # plaintext_auth = loopback (the default) and the client is on 127.0.0.1.
    c = Client(smtpd, "submission")
    caps = c.ehlo()
    assert "STARTTLS" in caps and "AUTH PLAIN LOGIN SCRAM-SHA-256" in caps
    assert c.cmd("AUTH PLAIN " + plain_ir(DEMO, PASSWORD))[0] == 235


def test_auth_before_tls_never(tlshost):
    tlshost.set(plaintext_auth="never")
    tlshost.start("smtpd")
    for service in ("smtp", "submission"):
        c = Client(tlshost, service)
        caps = c.ehlo()
        assert "STARTTLS" in caps and not any(x.startswith("AUTH") for x in caps), caps
        assert c.cmd("AUTH PLAIN " + plain_ir(DEMO, PASSWORD)) == \
            (538, ["5.7.11 Encryption required for requested authentication mechanism"])
        c.starttls()
        caps = c.ehlo()
        assert "AUTH PLAIN LOGIN SCRAM-SHA-256" in caps and "STARTTLS" not in caps
        assert c.cmd("AUTH PLAIN " + plain_ir(DEMO, PASSWORD))[0] == 235


def test_no_certificate_no_starttls(ferry):
    ferry.add_domain("example.test")
    ferry.set(plaintext_auth="never")
    ferry.start("smtpd")
    c = Client(ferry)
    caps = c.ehlo()
    assert "STARTTLS" not in caps and not any(x.startswith("AUTH") for x in caps)
    assert c.cmd("STARTTLS")[0] == 502


# --- implicit TLS (smtps) ------------------------------------------------------------------------

def test_smtps_greets_only_after_the_handshake(smtpd):
    s = socket.create_connection(("127.0.0.1", smtpd.port("smtps")), timeout=5)
    s.settimeout(0.7)
    with pytest.raises(socket.timeout):
        s.recv(100)  # no clear-text banner: the server waits for the ClientHello
    s.settimeout(5)
    t = ctx().wrap_socket(s)
    assert t.recv(200).startswith(b"220 mx.test ESMTP ferry")
    t.close()
    smtpd.wait_log("smtpd", r"\[127\.0\.0\.1\]: TLS: TLS1\.[23] with ")


def test_smtps_handshake_is_bounded_in_time(tlshost):
    tlshost.set(tls_handshake_timeout="1s")
    tlshost.start("smtpd")
    s = socket.create_connection(("127.0.0.1", tlshost.port("smtps")), timeout=10)
    start = time.monotonic()
    assert s.recv(100) == b""  # closed without a word
    assert 0.9 <= time.monotonic() - start < 5
    tlshost.wait_log("smtpd", r"disconnect from \[127\.0\.0\.1\]: timeout")


def test_failed_starttls_handshake_ends_only_that_session(smtpd):
    c = Client(smtpd)
    c.ehlo()
    assert c.cmd("STARTTLS")[0] == 220
    c.send(b"this is no ClientHello\r\n" * 4)
    c.sock.settimeout(5)
    while c.sock.recv(100):  # perhaps an alert, then the close
        pass
    smtpd.wait_log("smtpd", r"\[127\.0\.0\.1\]: STARTTLS: TLS handshake failed")
    other = Client(smtpd)
    assert other.cmd("NOOP")[0] == 250


def test_stop_during_a_password_check(smtpd):
    c = Client(smtpd, "submission")
    c.ehlo()
    c.starttls()
    c.ehlo()
    c.send("AUTH PLAIN " + plain_ir(DEMO, "wrong") + "\r\n")
    time.sleep(0.3)  # the check is under way (its answer is 1s away)
    smtpd.stop_one("smtpd")
    assert smtpd.procs["smtpd"].returncode == 0
    log = smtpd.log("smtpd")
    assert log.rstrip().endswith("stopped")
    assert "failed: wrong password" not in log  # the pending callback was cancelled, not run


def test_smtps_login_and_send(full):
    with smtplib.SMTP_SSL("127.0.0.1", full.port("smtps"), context=ctx(), timeout=15) as s:
        s.ehlo("client.test")
        assert s.has_extn("auth") and not s.has_extn("starttls")
        s.login(DEMO, PASSWORD)
        s.sendmail(DEMO, [DEMO], message(DEMO, DEMO, "smtps-login"))
    text = read(full.wait_mail(DEMO)[0])
    assert b"smtps-login" in text
    assert re.search(rb"\t\(authenticated as demo@example\.test\)\n\tby mx\.test \(ferry\) with ESMTPSA id ", text), text[:500]


def test_smtps_wrong_password(smtpd):
    with smtplib.SMTP_SSL("127.0.0.1", smtpd.port("smtps"), context=ctx(), timeout=15) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(DEMO, "wrong-password")
        assert e.value.smtp_code == 535 and e.value.smtp_error == b"5.7.8 Authentication credentials invalid"


@pytest.mark.parametrize("priority", ["NORMAL:-VERS-ALL:+VERS-TLS1.0:+VERS-TLS1.1", "NORMAL:-VERS-ALL:+VERS-TLS1.0"])
def test_smtps_refuses_old_tls(smtpd, priority):
    p = subprocess.run(["gnutls-cli", "--insecure", "--priority", priority, "-p", str(smtpd.port("smtps")), "127.0.0.1"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    assert "Handshake was completed" not in out, out
    assert p.returncode != 0
    assert "220 " not in out


def test_smtps_tls12_works(smtpd):
    p = subprocess.run(["gnutls-cli", "--insecure", "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2",
                        "-p", str(smtpd.port("smtps")), "127.0.0.1"],
                       input="QUIT\r\n", capture_output=True, text=True, timeout=30)
    assert "Handshake was completed" in p.stdout, p.stdout + p.stderr
    assert "220 mx.test ESMTP ferry" in p.stdout


def test_smtps_without_certificate_is_a_startup_error(ferry):
    ferry.set(smtpd_smtps_listen="127.0.0.1:0")
    p = subprocess.run([binary_path(), "-c", ferry.conf], capture_output=True, text=True, timeout=15)
    assert p.returncode == 78
    assert "smtpd_smtps_listen is set but tls_cert_file is not" in p.stderr
    assert "listening on" not in p.stderr


@pytest.mark.parametrize("which", ["cert", "key"])
def test_unreadable_certificate_is_a_startup_error(ferry, which):
    cert, key = ferry.tls()
    missing = os.path.join(ferry.root, "no-such.pem")
    ferry.set(**{("tls_cert_file" if which == "cert" else "tls_key_file"): missing})
    p = subprocess.run([binary_path(), "-c", ferry.conf], capture_output=True, text=True, timeout=15)
    assert p.returncode == 78, p.stderr
    assert missing in p.stderr
    assert "ready" not in p.stderr


def binary_path():
    from ferry_harness import binary
    return binary("smtpd")


# --- AUTH ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mechanism,initial", [("PLAIN", True), ("LOGIN", True), ("LOGIN", False), ("PLAIN", False)])
def test_auth_over_starttls_on_submission(full, mechanism, initial):
    with smtplib.SMTP("127.0.0.1", full.port("submission"), timeout=15) as s:
        s.ehlo("client.test")
        s.starttls(context=ctx())
        s.ehlo("client.test")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN", "SCRAM-SHA-256"]
        s.user, s.password = DEMO, PASSWORD
        auth = s.auth_plain if mechanism == "PLAIN" else s.auth_login
        code, text = s.auth(mechanism, auth, initial_response_ok=initial)
        assert (code, text) == (235, b"2.7.0 Authentication successful")
        token = f"auth-{mechanism}-{initial}"
        s.sendmail(DEMO, [DEMO], message(DEMO, DEMO, token))
    assert token.encode() in read(full.wait_mail(DEMO)[0])
    full.wait_log("smtpd", rf"\[127\.0\.0\.1\]: AUTH {mechanism} user=demo@example\.test ok$")


def test_wrong_password_is_535_after_the_delay(smtpd):
    with smtplib.SMTP("127.0.0.1", smtpd.port("submission"), timeout=15) as s:
        s.starttls(context=ctx())
        start = time.monotonic()
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(DEMO, "not-the-password")
        assert time.monotonic() - start >= 0.95  # auth_failure_delay = 1s in the harness
        assert e.value.smtp_code == 535 and e.value.smtp_error.startswith(b"5.7.8")
        s.login(DEMO, PASSWORD)  # the session goes on
    log = smtpd.log("smtpd")
    assert re.search(r"AUTH PLAIN user=demo@example\.test failed: wrong password", log)
    assert "not-the-password" not in log and PASSWORD not in log
    assert b64("not-the-password") not in log


def test_unknown_user_is_535(smtpd):
    c = Client(smtpd, "submission")
    c.ehlo()
    c.starttls()
    c.ehlo()
    assert c.cmd("AUTH PLAIN " + plain_ir("nobody@example.test", PASSWORD))[0] == 535


def test_swaks_auth_on_submission(full):
    for mech in ("PLAIN", "LOGIN"):
        p = subprocess.run(["swaks", "--server", f"127.0.0.1:{full.port('submission')}", "--tls",
                            "--auth", mech, "--auth-user", DEMO, "--auth-password", PASSWORD,
                            "--from", DEMO, "--to", DEMO, "--body", "swaks-auth-" + mech],
                           capture_output=True, text=True, timeout=60)
        assert "235 2.7.0 Authentication successful" in p.stdout, p.stdout
        assert re.search(r"<~  250 2\.0\.0 Ok: queued as", p.stdout), p.stdout
    texts = [read(x) for x in full.wait_mail(DEMO, count=2)]
    assert any(b"swaks-auth-LOGIN" in t for t in texts) and any(b"swaks-auth-PLAIN" in t for t in texts)


def test_auth_dialogue_edges(smtpd):
    c = Client(smtpd, "submission")
    assert c.cmd("AUTH PLAIN " + plain_ir(DEMO, PASSWORD)) == (503, ["5.5.1 Error: send EHLO first"])
    c.ehlo()
    c.starttls()
    assert c.cmd("HELO client.test")[0] == 250
    assert c.cmd("AUTH PLAIN")[0] == 503  # AUTH is an ESMTP extension
    c.ehlo()
    assert c.cmd("AUTH") == (501, ["5.5.4 Syntax: AUTH mechanism [initial-response]"])
    assert c.cmd("AUTH PLAIN a b")[0] == 501
    assert c.cmd("AUTH CRAM-MD5") == (504, ["5.5.4 Unrecognized authentication type"])
    assert c.cmd("AUTH PLAIN") == (334, [""])          # an empty challenge
    assert c.cmd("*") == (501, ["5.7.0 Authentication cancelled"])
    assert c.cmd("AUTH LOGIN") == (334, [b64("Username:")])
    assert c.cmd("*")[0] == 501
    assert c.cmd("AUTH PLAIN !!!!")[0] == 501           # not base64
    assert c.cmd("AUTH LOGIN " + b64(DEMO)) == (334, [b64("Password:")])
    assert c.cmd("not base64!")[0] == 501
    assert c.cmd("AUTH PLAIN =")[0] == 535              # an empty initial response is no PLAIN message
    assert c.cmd("AUTH PLAIN " + b64("other\0demo@example.test\0" + PASSWORD))[0] == 535  # authzid
    assert c.cmd("AUTH LOGIN") == (334, [b64("Username:")])
    assert c.cmd(b64(DEMO)) == (334, [b64("Password:")])
    assert c.cmd(b64(PASSWORD)) == (235, ["2.7.0 Authentication successful"])
    assert c.cmd("AUTH PLAIN " + plain_ir(DEMO, PASSWORD)) == (503, ["5.5.1 Error: already authenticated"])
    assert c.cmd("MAIL FROM:<demo@example.test>")[0] == 250


def test_auth_not_during_a_transaction(smtpd):
    c = Client(smtpd)  # port 25: MAIL without AUTH is fine
    c.ehlo()
    assert c.cmd("MAIL FROM:<x@outside.test>")[0] == 250
    assert c.cmd("AUTH PLAIN " + plain_ir(DEMO, PASSWORD)) == (503, ["5.5.1 Error: MAIL transaction in progress"])


def test_auth_response_line_limit(smtpd):
    c = Client(smtpd, "submission")
    c.ehlo()
    c.starttls()
    c.ehlo()
    assert c.cmd("AUTH PLAIN")[0] == 334
    # 12288 octets are allowed (RFC 4954 4): this one decodes but breaks PLAIN's limits.
    assert c.cmd("A" * 12284)[0] == 535
    assert c.cmd("AUTH PLAIN")[0] == 334
    c.send("A" * 20000 + "\r\n")  # too long: refused, and its tail is not read as a command
    assert c.reply() == (500, ["5.5.6 Authentication exchange line is too long"])
    assert c.cmd("NOOP") == (250, ["2.0.0 Ok"])
    assert c.nothing_pending()


def test_pipelined_commands_wait_for_the_password_check(smtpd):
    c = Client(smtpd, "submission")
    c.ehlo()
    c.starttls()
    c.ehlo()
    c.send("AUTH PLAIN " + plain_ir(DEMO, "wrong") + "\r\nMAIL FROM:<demo@example.test>\r\n")
    assert c.reply()[0] == 535
    assert c.reply() == (530, ["5.7.0 Authentication required"])  # MAIL saw the failed login
    c.send("AUTH PLAIN " + plain_ir(DEMO, PASSWORD) + "\r\nMAIL FROM:<demo@example.test>\r\n")
    assert c.reply()[0] == 235
    assert c.reply() == (250, ["2.1.0 Ok"])  # and this one the successful one


def test_failed_logins_are_limited(tlshost):
    tlshost.set(auth_max_failures=3, auth_failure_delay="1s")
    tlshost.start("smtpd")
    c = Client(tlshost, "submission")
    c.ehlo()
    c.starttls()
    c.ehlo()
    for _ in range(3):
        start = time.monotonic()
        assert c.cmd("AUTH PLAIN " + plain_ir(DEMO, "guess"))[0] == 535
        assert time.monotonic() - start >= 0.95
    # The fourth attempt is refused without a password check, even with the right password.
    for _ in range(2):
        start = time.monotonic()
        assert c.cmd("AUTH PLAIN " + plain_ir(DEMO, PASSWORD)) == \
            (421, ["4.7.0 mx.test Error: too many failed authentication attempts, try again later"])
        assert time.monotonic() - start >= 0.95
        with pytest.raises(OSError):  # closed, with or without a TLS close_notify
            c.line()
        c = login_attempt_session(tlshost)
    log = tlshost.log("smtpd")
    assert len(re.findall(r"AUTH PLAIN user=demo@example\.test failed", log)) == 3
    assert len(re.findall(r"AUTH PLAIN user=demo@example\.test refused: too many authentication failures", log)) == 2


def login_attempt_session(f):
    c = Client(f, "smtps", implicit=True)
    c.ehlo()
    return c


# --- submission rules ---------------------------------------------------------------------------

@pytest.mark.parametrize("service", ["submission", "smtps"])
def test_submission_requires_auth(smtpd, service):
    c = Client(smtpd, service, implicit=service == "smtps")
    c.ehlo()
    if service == "submission":
        c.starttls()
        c.ehlo()
    assert c.cmd("MAIL FROM:<demo@example.test>") == (530, ["5.7.0 Authentication required"])
    assert c.cmd("RCPT TO:<demo@example.test>")[0] == 503


def test_sender_must_be_owned(smtpd):
    smtpd.admin("alias", "add", "info@example.test", DEMO)
    smtpd.admin("alias", "add", "team@example.test", "info@example.test", OTHER)
    smtpd.admin("alias", "add", "sales@example.test", OTHER)
    smtpd.admin("alias", "add", "@example.test", DEMO)  # a catch-all gives no one every address
    c = login(smtpd)
    forged = {
        OTHER: "other account",
        "sales@example.test": "someone else's alias",
        "random@example.test": "only under the catch-all",
        "ceo@bigbank.test": "another domain",
    }
    for addr in forged:
        assert c.cmd(f"MAIL FROM:<{addr}>") == \
            (553, [f"5.7.1 <{addr}>: Sender address rejected: not owned by user demo@example.test"]), forged[addr]
    for addr in ["demo@example.test", "Demo@Example.TEST", "info@example.test", "team@example.test", ""]:
        assert c.cmd(f"MAIL FROM:<{addr}>")[0] == 250, addr
        assert c.cmd("RSET")[0] == 250


def test_authenticated_relay_is_queued(full):
    with smtplib.SMTP("127.0.0.1", full.port("submission"), timeout=15) as s:
        s.starttls(context=ctx())
        s.login(DEMO, PASSWORD)
        refused = s.sendmail(DEMO, ["friend@elsewhere.test", DEMO], message(DEMO, "friend@elsewhere.test", "relayed"))
        assert refused == {}
    full.wait_mail(DEMO)
    log = full.wait_log("smtpd", r"(\w+): from=<demo@example\.test> size=\d+ nrcpt=2 client=\[127\.0\.0\.1\] "
                                 r"auth=demo@example\.test \(queued\)")
    # The remote copy waits in the queue for ferry-relay.
    qid = log.group(1)
    env = read(os.path.join(full.keys["spool_dir"], "queue", qid))
    assert b"\nauth demo@example.test\n" in env


def test_unauthenticated_port_25_does_not_relay_but_authenticated_does(smtpd):
    c = Client(smtpd)
    c.ehlo()
    assert c.cmd("MAIL FROM:<x@outside.test>")[0] == 250
    assert c.cmd("RCPT TO:<friend@elsewhere.test>")[0] == 554
    c.close()
    c = login(smtpd, "smtp")
    assert c.cmd("MAIL FROM:<x@outside.test>")[0] == 553  # same sender rules as submission
    assert c.cmd("MAIL FROM:<demo@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<friend@elsewhere.test>")[0] == 250


def test_spool_envelope_and_received_record_the_login(smtpd):
    c = login(smtpd, "smtps")
    assert c.cmd("MAIL FROM:<demo@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<other@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    code, text = c.cmd("Subject: envelope\r\n\r\nbody\r\n.")
    assert code == 250
    qid = text[0].split()[-1]
    data = read(os.path.join(smtpd.keys["spool_dir"], "queue", qid))
    assert b"\nauth demo@example.test\n" in data
    assert re.search(rb"\nReceived: from client\.test \(unknown \[127\.0\.0\.1\]\)\n\t\(using TLS1\.3 with [^)]+\)\n"
                     rb"\t\(authenticated as demo@example\.test\)\n\tby mx\.test \(ferry\) with ESMTPSA id " +
                     qid.encode() + rb"\n\tfor <other@example\.test>; ", data), data[:600]


# --- privileges ---------------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_runs_as_mail_user_and_still_queues(tlshost):
    nobody = pwd.getpwnam("nobody")
    os.chmod(tlshost.root, 0o755)  # nobody must reach the account db and spool under the temp root
    os.chmod(tlshost.keys["account_db"], 0o644)
    os.chmod(tlshost.keys["tls_key_file"], 0o600)  # root-only: read before the switch
    spool = tlshost.keys["spool_dir"]
    for sub in ("", "incoming", "queue"):
        os.makedirs(os.path.join(spool, sub), exist_ok=True)
        os.chown(os.path.join(spool, sub), nobody.pw_uid, nobody.pw_gid)
    tlshost.set(mail_user="nobody", smtpd_submission_listen="", smtpd_smtps_listen="")
    tlshost.start("smtpd")
    with open(f"/proc/{tlshost.pid('smtpd')}/status") as fh:
        status = dict(line.split(":", 1) for line in fh)
    assert status["Uid"].split() == [str(nobody.pw_uid)] * 4
    assert status["Gid"].split() == [str(nobody.pw_gid)] * 4
    assert "running as nobody" in tlshost.log("smtpd")
    with smtplib.SMTP("127.0.0.1", tlshost.port("smtp"), timeout=15) as s:
        s.starttls(context=ctx())  # the root-only key was loaded before dropping privileges
        s.login(DEMO, PASSWORD)    # password checks work as nobody
        s.sendmail(DEMO, [DEMO], message(DEMO, DEMO, "as-nobody"))
    files = tlshost.spool_files("queue")
    assert len(files) == 1
    assert os.stat(files[0]).st_uid == nobody.pw_uid
    assert b"as-nobody" in read(files[0])
