"""ferry-relay: mail for outside domains leaves over SMTP to real peers on their own loopback hosts."""
import os
import re
import signal
import smtplib
import time

import pytest

from ferry_harness import DROP, ScriptedPeer, SmtpSink, smtp_dialogue, wait_until

DEMO = "demo@example.test"


@pytest.fixture
def sender(host):
    """host with mda, qmgr, relay and smtpd running, short SMTP client timeouts."""
    host.set(relay_connect_timeout="3s", relay_greeting_timeout="3s", relay_mail_timeout="3s",
             relay_rcpt_timeout="3s", relay_data_timeout="3s", relay_data_block_timeout="3s",
             relay_data_done_timeout="3s", relay_connection_reuse_time="5s")
    host.start("mda", "relay", "qmgr", "smtpd")
    return host


def route_to(f, addr):
    """A domain whose mail goes to addr:25 (a relay_transport_map line); ferry-relay rereads the map."""
    domain = "h" + addr.replace(".", "-") + ".test"
    path = os.path.join(f.root, "transport")
    with open(path, "a") as fp:
        fp.write(f"{domain}  [{addr}]:25\n")
    f.set(relay_transport_map=path)
    f.restart("relay")
    return domain


def submit(f, rcpts, body, sender_addr=DEMO, headers="Subject: test\n"):
    """Sends a message through ferry-smtpd as the demo user (loopback: AUTH without TLS)."""
    msg = (headers + "\n" + body).replace("\n", "\r\n").encode()
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.login(DEMO, "demo-secret")
        s.sendmail(sender_addr, rcpts, msg)


@pytest.fixture
def peers():
    started = []

    def make(*args, **kw):
        p = ScriptedPeer(*args, **kw)
        started.append(p)
        return p
    yield make
    for p in started:
        p.stop()


@pytest.fixture
def sinks():
    started = []

    def make(options=()):
        s = SmtpSink(options=options)
        started.append(s)
        return s
    yield make
    for s in started:
        s.stop()


def test_delivers_to_smtp_sink_byte_exact(sender, sinks):
    sink = sinks()
    body = "Line one\n.starts with a dot\n\n..two dots\ntrailing  \nlast line\n"
    submit(sender, [f"bob@{route_to(sender, sink.addr)}"], body, headers="Subject: to the sink\nX-Test: exact\n")
    wait_until(lambda: sink.messages(), what="message at the sink")
    got = sink.messages()[0].decode()
    # smtp-sink puts its own X- lines and Received: on top, writes LF line ends and one more LF at
    # the end; between them is the message as ferry-smtpd queued it (its Received: on top), exactly.
    content = got.split("(UTC)\n", 1)[1]
    original = "Subject: to the sink\nX-Test: exact\n\n" + body
    assert re.fullmatch(r"Received: from \[127\.0\.0\.1\] [^\n]*\n(\t[^\n]*\n)+" + re.escape(original) + "\n",
                        content), content
    qid = sender.wait_log("qmgr", r"(\w+): to=<bob@h[\d-]+\.test> .*status=sent").group(1)
    sender.wait_log("qmgr", rf"{qid}: removed$")
    assert re.search(rf"{qid}: to=<bob@h[\d-]+\.test> relay=host {re.escape(sink.addr)}\[{re.escape(sink.addr)}\]",
                     sender.log("relay"))


@pytest.mark.parametrize("ehlo", [("PIPELINING", "8BITMIME"), ("8BITMIME",)], ids=["pipelining", "lockstep"])
def test_550_bounces_with_the_remote_reply(sender, peers, ehlo):
    peer = peers(smtp_dialogue(rcpt_reply=lambda n: "550 5.1.1 no such user", ehlo=ehlo))
    submit(sender, [f"nobody@{route_to(sender, peer.addr)}"], "hello\n")
    files = sender.wait_mail(DEMO, 1, timeout=30)
    report = open(files[0], errors="replace").read()
    assert "Diagnostic-Code: smtp; 550 5.1.1" in report or "550 5.1.1" in report
    assert f"host {peer.addr}[{peer.addr}] said: 550 5.1.1 no such user" in report.replace("\n ", " ")
    assert "Status: 5.1.1" in report
    assert not getattr(peer, "messages", [])
    assert "timeout" not in sender.log("relay")  # the transaction ended with the refusal, not a timer


def test_451_is_retried_and_delivered(sender, peers):
    peer = peers(smtp_dialogue(rcpt_reply=lambda n: "451 4.3.0 try again later" if n == 1 else "250 2.1.5 Ok"))
    submit(sender, [f"later@{route_to(sender, peer.addr)}"], "retry me\n")
    sender.wait_log("qmgr", r"to=<later@h.*status=deferred .*451 4\.3\.0 .*try again later")
    wait_until(lambda: getattr(peer, "messages", []), timeout=30, what="delivered on retry")
    assert b"retry me" in peer.messages[0]
    sender.wait_log("qmgr", r"to=<later@h.*status=sent")
    wait_until(lambda: sender.spool_ids("queue") == [], what="queue empty")
    assert peer.rcpts == 2


def test_required_tls_to_a_peer_without_starttls_is_deferred(sender, sinks):
    sender.set(relay_tls_policy="encrypt")
    sender.restart("relay")
    sink = sinks()
    submit(sender, [f"secret@{route_to(sender, sink.addr)}"], "never in clear\n")
    sender.wait_log("qmgr", r"to=<secret@h.*status=deferred .*451 4\.7\.4 .*TLS is required, but was not offered")
    time.sleep(0.5)
    assert sink.messages() == []
    assert sender.spool_ids("queue") != []


def test_8bit_to_a_peer_without_8bitmime_arrives_quoted_printable(sender, sinks):
    sink = sinks(options=("-8",))
    submit(sender, [f"eight@{route_to(sender, sink.addr)}"], "caf\u00e9 cr\u00e8me\nplain line\n",
           headers="Subject: eight\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                   "Content-Transfer-Encoding: 8bit\n")
    wait_until(lambda: sink.messages(), what="message at the sink")
    got = sink.messages()[0]
    assert max(got) < 128, got
    text = got.decode()
    assert "Content-Transfer-Encoding: quoted-printable\n" in text
    assert "Content-Transfer-Encoding: 8bit" not in text
    assert "caf=C3=A9 cr=C3=A8me\nplain line\n" in text


def test_too_big_for_the_peer_bounces_before_sending(sender, peers):
    peer = peers(smtp_dialogue(ehlo=("PIPELINING", "SIZE 100")))
    submit(sender, [f"big@{route_to(sender, peer.addr)}"], "x" * 500 + "\n")
    files = sender.wait_mail(DEMO, 1, timeout=30)
    report = open(files[0], errors="replace").read().replace("\n ", " ")
    assert "552 5.3.4" in report
    assert not [line for line in peer.log if line.upper().startswith("MAIL")]


def test_a_connection_is_reused_for_the_next_message(sender, peers):
    peer = peers(smtp_dialogue())
    domain = route_to(sender, peer.addr)
    submit(sender, [f"one@{domain}"], "first\n")
    wait_until(lambda: len(getattr(peer, "messages", [])) == 1, what="first message")
    submit(sender, [f"two@{domain}"], "second\n")
    wait_until(lambda: len(getattr(peer, "messages", [])) == 2, what="second message")
    assert peer.connections == 1
    assert "RSET" in peer.log


def _garbage(conn, peer):
    conn.sendall(b"hello there, I am no SMTP server\r\n")
    time.sleep(5)


def _long_line(conn, peer):
    conn.sendall(b"220-" + b"x" * 100000)
    time.sleep(5)


def _stall_mid_reply(conn, peer):
    conn.sendall(b"220 peer.test ESMTP\r\n")
    peer.readline(conn)
    conn.sendall(b"250-peer.test\r\n250-PIPE")
    time.sleep(10)


# Answers EHLO and MAIL, then drops the connection at the first RCPT.
_drop_after_rcpt = smtp_dialogue(ehlo=(), rcpt_reply=lambda n: DROP)


def _many_lines(conn, peer):
    conn.sendall(b"220-x\r\n" * 1000)
    time.sleep(5)


@pytest.mark.parametrize("behaviour,why", [
    (_garbage, "protocol error"),
    (_long_line, "protocol error"),
    (_stall_mid_reply, "timeout"),
    (_drop_after_rcpt, "lost connection"),
    (_many_lines, "protocol error"),
])
def test_hostile_peers_defer_and_the_relay_goes_on(sender, peers, sinks, behaviour, why):
    bad = peers(behaviour)
    submit(sender, [f"victim@{route_to(sender, bad.addr)}"], "to a hostile peer\n")
    sender.wait_log("qmgr", rf"to=<victim@h.*status=deferred .*4\.4\.\d .*{why}", timeout=30)
    assert sender.procs["relay"].poll() is None
    # The relay still works for others meanwhile.
    sink = sinks()
    submit(sender, [f"fine@{route_to(sender, sink.addr)}"], "still working\n")
    wait_until(lambda: sink.messages(), what="a good delivery after the hostile peer")


def test_sigkill_mid_transfer_loses_nothing(sender, peers):
    sender.set(relay_data_done_timeout="60s")
    sender.restart("relay")

    def stall(conn, peer):
        time.sleep(120)  # the first connection never answers the final dot

    peer = peers(smtp_dialogue(after_dot=lambda conn, p: stall(conn, p) if p.connections == 1 else
                             conn.sendall(b"250 2.0.0 Ok\r\n")))
    submit(sender, [f"crash@{route_to(sender, peer.addr)}"], "survive a crash\n")
    wait_until(lambda: len(getattr(peer, "messages", [])) == 1, what="data sent to the stalling peer")
    sender.kill("relay", signal.SIGKILL)
    sender.wait_log("qmgr", r"to=<crash@h.*status=(unknown|deferred)")
    sender.start("relay")
    wait_until(lambda: sender.spool_ids("queue") == [], timeout=40, what="delivered after the restart")
    sender.wait_log("qmgr", r"to=<crash@h.*status=sent")
    assert len(peer.messages) == 2  # the stalled transfer and the retry: a duplicate, never a loss
    assert all(b"survive a crash" in m for m in peer.messages)


def test_chunking_peer_gets_bdat_with_crlf_and_no_dot_stuffing(sender, peers):
    peer = peers(smtp_dialogue(ehlo=("PIPELINING", "8BITMIME", "CHUNKING")))
    body = ".leading dot\nsecond\n" + "y" * 100 + "\n" * 3 + ("z" * 70 + "\n") * 2000
    submit(sender, [f"chunks@{route_to(sender, peer.addr)}"], body)
    wait_until(lambda: getattr(peer, "messages", []), what="BDAT transaction")
    got = peer.messages[0]
    assert got.endswith(("\n\n" + body).replace("\n", "\r\n").encode())
    assert b"\r\n..leading" not in got
    assert not [line for line in peer.log if line.upper() == "DATA"]
    sender.wait_log("qmgr", r"to=<chunks@h.*status=sent")


def test_relayhost_login_only_over_tls(sender, peers):
    import ssl
    from ferry_harness import make_cert

    cert, key = make_cert(sender.root, "smtp.provider.test")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    peer = peers(smtp_dialogue(name="provider", ehlo=("AUTH PLAIN LOGIN", "8BITMIME"), starttls=ctx,
                               require_auth=True))
    passwords = os.path.join(sender.root, "relay_passwords")
    with open(passwords, "w") as fp:
        fp.write(f"[{peer.addr}]:25 alice@provider.test s3cret\n")
    os.chmod(passwords, 0o600)
    sender.set(relayhost=f"[{peer.addr}]:25", relayhost_password_file=passwords)
    sender.restart("relay")
    submit(sender, ["friend@anywhere.test"], "through the provider\n")
    wait_until(lambda: getattr(peer, "messages", []), what="message at the relay host")
    assert peer.auth == (True, b"\0alice@provider.test\0s3cret")
    assert "s3cret" not in sender.log("relay")


def test_relayhost_password_never_goes_in_the_clear(sender, peers):
    peer = peers(smtp_dialogue(ehlo=("AUTH PLAIN LOGIN", "8BITMIME")))
    passwords = os.path.join(sender.root, "relay_passwords")
    with open(passwords, "w") as fp:
        fp.write(f"[{peer.addr}]:25 alice@provider.test s3cret\n")
    sender.set(relayhost=f"[{peer.addr}]:25", relayhost_password_file=passwords)
    sender.restart("relay")
    submit(sender, ["friend@anywhere.test"], "no TLS, no password\n")
    sender.wait_log("relay", r"offers AUTH without TLS: not logging in")
    wait_until(lambda: getattr(peer, "messages", []), what="sent without logging in")
    assert not [line for line in peer.log if line.upper().startswith("AUTH")]


def test_one_transaction_per_domain_with_a_reply_per_recipient(sender, peers):
    a = peers(smtp_dialogue(rcpt_reply=lambda n: "550 5.1.1 gone" if n == 2 else "250 2.1.5 Ok"))
    b = peers(smtp_dialogue())
    dom_a, dom_b = route_to(sender, a.addr), route_to(sender, b.addr)
    submit(sender, [f"one@{dom_a}", f"two@{dom_a}", f"three@{dom_b}", DEMO], "to three places\n")
    sender.wait_mail(DEMO, 1)
    wait_until(lambda: getattr(a, "messages", []) and getattr(b, "messages", []), what="both domains")
    assert [line for line in a.log if line.upper().startswith("RCPT")] == [f"RCPT TO:<one@{dom_a}>",
                                                                         f"RCPT TO:<two@{dom_a}>"]
    assert [line for line in b.log if line.upper().startswith("RCPT")] == [f"RCPT TO:<three@{dom_b}>"]
    sender.wait_log("qmgr", rf"to=<one@{re.escape(dom_a)}> .*status=sent")
    sender.wait_log("qmgr", rf"to=<three@{re.escape(dom_b)}> .*status=sent")
    sender.wait_log("qmgr", rf"to=<two@{re.escape(dom_a)}> .*status=bounced .*said: 550 5\.1\.1 gone")
    sender.wait_mail(DEMO, 2, timeout=30)  # the local copy and the bounce for two@


class Lmtp:
    """A client on ferry-relay's LMTP socket, as qmgr (or any LMTP client) talks to it."""

    def __init__(self, f):
        import socket
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(30)
        self.s.connect(os.path.join(f.keys["run_dir"], "relay.sock"))
        self.buf = b""
        self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            more = self.s.recv(4096)
            if not more:
                raise EOFError("relay closed the connection")
            self.buf += more
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return lines[-1]

    def cmd(self, text):
        self.s.sendall((text + "\r\n").encode())
        return self.reply()


def test_lmtp_replies_carry_the_remote_servers_words(sender, peers):
    peer = peers(smtp_dialogue(rcpt_reply=lambda n: "550 5.1.1 no such user" if n == 2 else "250 2.1.5 Ok",
                             data_reply=lambda n: "250 2.0.0 Ok: queued as XYZ"))
    domain = route_to(sender, peer.addr)
    c = Lmtp(sender)
    assert c.cmd("LHLO qmgr.test").startswith("250")
    assert c.cmd("MAIL FROM:<demo@example.test>").startswith("250")
    assert c.cmd(f"RCPT TO:<ok@{domain}>").startswith("250")
    assert c.cmd(f"RCPT TO:<bob@{domain}>").startswith("250")
    assert c.cmd("RCPT TO:<x@other.test>").startswith("452 4.5.3")  # one destination per transaction
    assert c.cmd("DATA").startswith("354")
    c.s.sendall(b"Subject: direct\r\n\r\nhello\r\n.\r\n")
    first, second = c.reply(), c.reply()
    assert first == (f"250 2.0.0 <ok@{domain}>: delivered to host {peer.addr}[{peer.addr}]: "
                     "250 2.0.0 Ok: queued as XYZ")
    assert second == f"550 5.1.1 <bob@{domain}>: host {peer.addr}[{peer.addr}] said: 550 5.1.1 no such user"



def _no_tls_hello(conn, peer):
    """After "220" to STARTTLS: garbage for the client's TLS hello, then the connection ends."""
    conn.recv(4096)
    conn.sendall(b"this is no TLS server hello\r\n" * 4)


# Offers STARTTLS on the first connection only, then answers the handshake with garbage.
_broken_tls_peer = smtp_dialogue(ehlo=lambda peer, tls: ("STARTTLS", "8BITMIME") if peer.connections == 1 else (),
                                 starttls=_no_tls_hello)


def test_failed_opportunistic_tls_falls_back_to_the_clear(sender, peers):
    peer = peers(_broken_tls_peer)
    submit(sender, [f"fallback@{route_to(sender, peer.addr)}"], "tls broke, mail goes\n")
    wait_until(lambda: getattr(peer, "messages", []), what="delivered without TLS")
    assert "trying again without TLS" in sender.log("relay")
    assert peer.connections == 2


def test_failed_tls_under_encrypt_is_deferred(sender, peers):
    sender.set(relay_tls_policy="encrypt")
    peer = peers(_broken_tls_peer)
    submit(sender, [f"strict@{route_to(sender, peer.addr)}"], "only over TLS\n")
    sender.wait_log("qmgr", r"to=<strict@h.*status=deferred .*451 4\.7\.5 .*TLS with host .* failed")
    assert not getattr(peer, "messages", [])
