"""The spam check of ferry-smtpd with the real daemons: GTUBE scores as spam, clean mail does not,
X-Spam-* fields from outside are dropped, a rule file's rules fire, a DNS block list served by a
real dnsmasq adds its weight (an allow list takes it off, a list that does not answer counts
nothing), mail of relay clients is not scored, spam_reject_score refuses."""
import os
import smtplib
import time

import pytest

from ferry_harness import dnsmasq, wait_until

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture
def host(host):
    """The harness turns the spam check off for other tests; here it is on, as by default."""
    del host.keys["spam_filter"]
    host._write_conf()
    return host


@pytest.fixture
def mailhost(host):
    host.start("mda", "qmgr", "smtpd")
    return host


def send(f, token, body="", headers="", sender="a@outside.test"):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), local_hostname="client.test", timeout=30) as s:
        s.sendmail(sender, ["demo@example.test"],
                   f"From: {sender}\r\nSubject: {token}\r\n{headers}\r\n{token}\r\n{body}\r\n")


def mail_files(maildir):
    """Every message file of a Maildir and its folders (".Junk" and the like, which glob's ** skips)."""
    for d, _, files in os.walk(maildir):
        if os.path.basename(d) in ("new", "cur"):
            yield from (os.path.join(d, n) for n in files)


def delivered(f, token):
    """The unfolded header lines of the delivered message holding `token`, in any folder (ferry-mda
    files spam into Junk)."""
    root = f.maildir("demo@example.test")

    def find():
        for path in mail_files(root):
            text = open(path, errors="replace").read()
            if token in text:
                return text
        return None
    wait_until(lambda: find() is not None, 15, f"message {token} delivered")
    head = find().split("\n\n", 1)[0]
    return head.replace("\n\t", " ").replace("\n ", " ").splitlines()


def spam_fields(headers):
    return [h for h in headers if h.lower().startswith("x-spam-")]


def test_gtube_scores_as_spam(mailhost):
    send(mailhost, "gtube-1", body=GTUBE)
    fields = spam_fields(delivered(mailhost, "gtube-1"))
    assert fields[0] == "X-Spam-Score: 1000.0"
    assert fields[1] == "X-Spam-Status: Yes, score=1000.0 required=5.0 tests=GTUBE"
    assert len(fields) == 2
    assert "spam: Yes, score=1000.0" in mailhost.log("smtpd")


def test_clean_mail_scores_no(mailhost):
    send(mailhost, "clean-1", body="Lunch at noon?")
    assert spam_fields(delivered(mailhost, "clean-1")) == [
        "X-Spam-Score: 0.0", "X-Spam-Status: No, score=0.0 required=5.0 tests=none"]


def test_forged_fields_are_removed(mailhost):
    forged = ("X-Spam-Score: -50\r\nX-Spam-Status: No, score=-50.0 required=5.0\r\n\tolder=yes\r\n"
              "X-Spam-Flag: NO\r\nX-Spam-Level: kept\r\n")
    send(mailhost, "forged-1", body=GTUBE, headers=forged)
    headers = delivered(mailhost, "forged-1")
    assert spam_fields(headers) == [
        "X-Spam-Score: 1000.0", "X-Spam-Status: Yes, score=1000.0 required=5.0 tests=GTUBE",
        "X-Spam-Level: kept"]
    assert "removed 3 X-Spam-* header(s) from outside" in mailhost.log("smtpd")


def test_rule_file_rules_fire(host):
    rules = os.path.join(host.root, "spam.rules")
    with open(rules, "w") as r:
        r.write("# local rules\n"
                "header SUBJ_PRIZE Subject 3.5 /pri[sz]e/i\n"
                "body   MONEY      2        /\\$[0-9]+ million/\n"
                "body   FRIEND     -1       dear friend\n")
    host.set(spam_rules_file=rules, spam_junk_score="5")
    host.start("mda", "qmgr", "smtpd")
    send(host, "Your PRIZE-1", body="Dear Friend, claim $10 million now")
    assert spam_fields(delivered(host, "PRIZE-1")) == [
        "X-Spam-Score: 4.5", "X-Spam-Status: No, score=4.5 required=5.0 tests=SUBJ_PRIZE,MONEY,FRIEND"]


def test_bad_rule_file_stops_start_up(host):
    rules = os.path.join(host.root, "spam.rules")
    with open(rules, "w") as r:
        r.write("body OK 1 fine\nbody BAD 1 /(unclosed/\n")
    host.set(spam_rules_file=rules)
    host.start("smtpd", wait=False)
    assert host.procs["smtpd"].wait(15) == 78
    assert "spam_rules_file: " + rules + ": line 2: rule BAD: bad regex" in host.log("smtpd")


def test_relay_clients_are_not_scored(host):
    host.set(smtpd_relay_networks="127.0.0.0/8")
    host.start("mda", "qmgr", "smtpd")
    send(host, "relay-1", body=GTUBE)
    assert spam_fields(delivered(host, "relay-1")) == []


def test_reject_score_refuses(host):
    host.set(spam_reject_score="100")
    host.start("mda", "qmgr", "smtpd")
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(host, "reject-1", body=GTUBE)
    assert e.value.smtp_code == 550
    assert b"5.7.1" in e.value.smtp_error
    send(host, "reject-2", body="fine")
    delivered(host, "reject-2")
    assert not any("reject-1" in open(p, errors="replace").read() for p in mail_files(host.maildir("demo@example.test")))


ZONE = "".join([
    # 127.0.0.1 reversed, in a block list and an allow list; "quiet.test" is not served here at all.
    "host-record=1.0.0.127.bl.test,127.0.0.2\n",
    "host-record=1.0.0.127.wl.test,127.0.0.9\n",
    # An answer outside 127.0.0.x (Spamhaus says "refused" so) is not a listing.
    "host-record=1.0.0.127.odd.test,127.255.255.254\n",
])


@pytest.fixture(scope="module")
def dns():
    with dnsmasq(ZONE) as server:
        yield server


def test_dns_lists_add_their_weights(host, dns):
    ip, port = dns
    host.set(dns_servers=f"{ip}:{port}", dns_timeout="2s",
             spam_dnsbl_zones="bl.test:3.5, wl.test:-2, odd.test:50, none.test:7")
    host.start("mda", "qmgr", "smtpd")
    send(host, "dnsbl-1", body="hello")
    assert spam_fields(delivered(host, "dnsbl-1")) == [
        "X-Spam-Score: 1.5", "X-Spam-Status: No, score=1.5 required=5.0 tests=DNSBL_bl.test,DNSWL_wl.test"]


def test_dns_list_timeout_counts_nothing(host):
    # A UDP port where nothing answers: every query times out.
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    host.set(dns_servers=f"127.0.0.1:{s.getsockname()[1]}", dns_timeout="1s", spam_dnsbl_zones="bl.test:3.5")
    host.start("mda", "qmgr", "smtpd")
    t = time.monotonic()
    send(host, "dnsbl-timeout", body="hello")
    assert time.monotonic() - t < 10
    assert spam_fields(delivered(host, "dnsbl-timeout")) == [
        "X-Spam-Score: 0.0", "X-Spam-Status: No, score=0.0 required=5.0 tests=none"]
    assert "DNS list bl.test: no answer for 1.0.0.127.bl.test" in host.log("smtpd")
    s.close()


class FakeSpamd:
    """Answers SPAMC/1.5 CHECK like spamd: 1000.0 when the message holds GTUBE, 0.5 otherwise;
    `silent` reads the request and never answers."""

    def __init__(self, silent=False):
        import socket
        import threading
        self.silent = silent
        self.held = []
        self.requests = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import threading
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
        length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1])
        while len(body) < length:
            d = conn.recv(65536)
            if not d:
                break
            body += d
        self.requests.append((head.split(b"\r\n")[0], body))
        if self.silent:
            self.held.append(conn)
            return
        score = "1000.0" if GTUBE.encode() in body else "0.5"
        conn.sendall(f"SPAMD/1.1 0 EX_OK\r\nSpam: True ; {score} / 5.0\r\n\r\n".encode())
        conn.close()

    def stop(self):
        self.sock.close()
        for c in self.held:
            c.close()


def test_spamd_score_joins_ours(host):
    spamd = FakeSpamd()
    try:
        host.set(spamd_address=spamd.address, spamd_timeout="5s")
        host.start("mda", "qmgr", "smtpd")
        send(host, "spamd-1", body=GTUBE)
        assert spam_fields(delivered(host, "spamd-1")) == [
            "X-Spam-Score: 2000.0", "X-Spam-Status: Yes, score=2000.0 required=5.0 tests=GTUBE,SPAMD"]
        send(host, "spamd-2", body="hello")
        assert spam_fields(delivered(host, "spamd-2"))[0] == "X-Spam-Score: 0.5"
        first, body = spamd.requests[0]
        assert first == b"CHECK SPAMC/1.5"
        assert b"spamd-1" in body and body.startswith(b"Received: ")
    finally:
        spamd.stop()


def test_spamd_silent_counts_nothing(host):
    spamd = FakeSpamd(silent=True)
    try:
        host.set(spamd_address=spamd.address, spamd_timeout="1s")
        host.start("mda", "qmgr", "smtpd")
        send(host, "spamd-3", body=GTUBE)
        assert spam_fields(delivered(host, "spamd-3")) == [
            "X-Spam-Score: 1000.0", "X-Spam-Status: Yes, score=1000.0 required=5.0 tests=GTUBE"]
        assert "spam: spamd: no answer within spamd_timeout, counted as nothing" in host.log("smtpd")
    finally:
        spamd.stop()
