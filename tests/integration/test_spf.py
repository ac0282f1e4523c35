"""SPF in ferry-smtpd against a real dnsmasq and the real daemons: Authentication-Results with
pass, fail, none, temperror and permerror, the HELO identity, reject_fail's 550 5.7.23, no check
for clients in smtpd_relay_networks, and one field with the DKIM and DMARC results when those are on."""
import re
import smtplib
import socket

import pytest

from ferry_harness import dnsmasq

ZONE = "".join([
    'txt-record=spf-pass.test,"v=spf1 ip4:127.0.0.0/8 -all"\n',
    'txt-record=spf-fail.test,"v=spf1 ip4:192.0.2.1 -all exp=why.spf-fail.test"\n',
    'txt-record=why.spf-fail.test,"%{i} is not a mail server of %{d}"\n',
    'txt-record=spf-a.test,"v=spf1 a:host.spf-a.test/24 -all"\n',
    'host-record=host.spf-a.test,127.0.0.200\n',
    'txt-record=spf-mx.test,"v=spf1 mx ~all"\n',
    'mx-host=spf-mx.test,mx.spf-mx.test,10\n',
    'host-record=mx.spf-mx.test,192.0.2.25\n',
    'txt-record=helo-pass.test,"v=spf1 ip4:127.0.0.1 -all"\n',
    'txt-record=spf-two.test,"v=spf1 -all"\n',
    'txt-record=spf-two.test,"v=spf1 +all"\n',
    # An include chain of 12: the 11th DNS-querying term is over RFC 7208's limit of 10.
    *[f'txt-record=chain{i}.test,"v=spf1 include:chain{i + 1}.test -all"\n' for i in range(12)],
    'txt-record=chain12.test,"v=spf1 +all"\n',
])


@pytest.fixture(scope="module")
def dns():
    with dnsmasq(ZONE) as server:
        yield server


@pytest.fixture
def mx(host, dns):
    """ferry with SPF on (record), its DNS from the dnsmasq above; mda, qmgr and smtpd running."""
    ip, port = dns
    host.set(smtpd_spf_policy="record", dns_servers=f"{ip}:{port}", dns_timeout="2s", smtpd_spf_timeout="5s")
    host.start("mda", "qmgr", "smtpd")
    return host


def send(f, sender, token, helo="client.test"):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), local_hostname=helo, timeout=30) as s:
        s.sendmail(sender, ["demo@example.test"], f"From: a@b.test\r\nSubject: {token}\r\n\r\n{token}\r\n")


def delivered(f, token):
    """The headers of the delivered message holding `token`, unfolded, one per line."""
    def find():
        for path in f.mail("demo@example.test"):
            text = open(path, errors="replace").read()
            if token in text:
                return text
        return None
    from ferry_harness import wait_until
    wait_until(lambda: find() is not None, 15, f"message {token} delivered")
    head = find().split("\n\n", 1)[0]
    return head.replace("\n\t", " ").replace("\n ", " ").splitlines()


def auth_results(headers):
    return [h for h in headers if h.lower().startswith("authentication-results:")]


@pytest.mark.parametrize("sender,result", [
    ("x@spf-pass.test", "pass"),
    ("x@spf-fail.test", "fail"),
    ("x@spf-a.test", "pass"),
    ("x@spf-mx.test", "softfail"),
    ("x@no-record.test", "none"),
    ("x@spf-two.test", "permerror"),
    ("x@chain0.test", "permerror"),
])
def test_result_in_authentication_results(mx, sender, result):
    send(mx, sender, f"tok-{result}-{sender}")
    ar = auth_results(delivered(mx, f"tok-{result}-{sender}"))
    assert len(ar) == 1, ar
    assert ar[0].startswith("Authentication-Results: mx.test;"), ar
    assert f"spf={result} " in ar[0] and f"smtp.mailfrom={sender}" in ar[0], ar
    assert f"spf={result}" in mx.log("smtpd")


def test_over_long_include_chain_says_why(mx):
    send(mx, "x@chain0.test", "tok-chain")
    ar = auth_results(delivered(mx, "tok-chain"))
    assert "spf=permerror" in ar[0] and "more than 10 DNS-querying terms" in ar[0], ar


def test_null_sender_checks_the_helo_identity(mx):
    send(mx, "", "tok-helo", helo="helo-pass.test")
    ar = auth_results(delivered(mx, "tok-helo"))
    assert "spf=pass" in ar[0] and "smtp.helo=helo-pass.test" in ar[0], ar


def test_reject_fail_refuses_with_5_7_23_and_the_explanation(host, dns):
    ip, port = dns
    host.set(smtpd_spf_policy="reject_fail", dns_servers=f"{ip}:{port}", dns_timeout="2s")
    host.start("mda", "qmgr", "smtpd")
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.ehlo("client.test")
        code, text = s.mail("x@spf-fail.test")
        assert code == 550 and text.startswith(b"5.7.23"), (code, text)
        assert b"127.0.0.1 is not a mail server of spf-fail.test" in text
        s.rset()
        code, _ = s.mail("x@spf-pass.test")  # a pass in the same session is taken
        assert code == 250
        assert s.rcpt("demo@example.test")[0] == 250
        assert s.data(b"Subject: ok\r\n\r\ntok-after-reject\r\n")[0] == 250
    assert "spf=pass" in " ".join(auth_results(delivered(host, "tok-after-reject")))


def test_dns_that_never_answers_is_temperror_and_mail_is_taken(host):
    # A UDP socket that never reads: every query times out.
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        host.set(smtpd_spf_policy="reject_fail", dns_servers=f"127.0.0.1:{sink.getsockname()[1]}",
                 dns_timeout="1s", smtpd_spf_timeout="2s")
        host.start("mda", "qmgr", "smtpd")
        send(host, "x@spf-fail.test", "tok-temp")
        ar = auth_results(delivered(host, "tok-temp"))
        assert "spf=temperror" in ar[0], ar
    finally:
        sink.close()


def test_relay_network_clients_are_not_checked(host, dns):
    ip, port = dns
    host.set(smtpd_spf_policy="reject_fail", dns_servers=f"{ip}:{port}", smtpd_relay_networks="127.0.0.0/8")
    host.start("mda", "qmgr", "smtpd")
    send(host, "x@spf-fail.test", "tok-relay")
    assert auth_results(delivered(host, "tok-relay")) == []
    assert "spf=" not in host.log("smtpd")


def test_forged_authentication_results_are_removed(mx):
    with smtplib.SMTP("127.0.0.1", mx.port("smtp"), local_hostname="client.test", timeout=30) as s:
        s.sendmail("x@spf-fail.test", ["demo@example.test"],
                   "Authentication-Results: MX.test;\r\n\tspf=pass smtp.mailfrom=x@spf-fail.test\r\n"
                   "Authentication-Results: elsewhere.test; spf=pass\r\n"
                   "Subject: tok-forged\r\n\r\ntok-forged\r\n")
    ar = auth_results(delivered(mx, "tok-forged"))
    assert len(ar) == 2, ar
    assert ar[0].startswith("Authentication-Results: mx.test;") and "spf=fail" in ar[0], ar
    assert ar[1] == "Authentication-Results: elsewhere.test; spf=pass", ar
    assert "removed 1 Authentication-Results header(s) claiming mx.test" in mx.log("smtpd")


def test_forged_fields_go_from_the_header_of_a_large_message_and_its_body_stays_whole(mx):
    # Past the header section ferry-smtpd stops filtering and writes the DATA reader's output
    # straight out in pieces: a body of many pieces arrives byte for byte, a header-like line in it
    # included, while the forged field of the header is gone.
    body = "".join(f"line {i:06d} " + "b" * 60 + "\r\n" for i in range(4000))
    body += "Authentication-Results: mx.test; spf=pass (a line of the body)\r\n" + body + ".dot-led line\r\n"
    with smtplib.SMTP("127.0.0.1", mx.port("smtp"), local_hostname="client.test", timeout=30) as s:
        s.sendmail("x@spf-fail.test", ["demo@example.test"],
                   "Authentication-Results: mx.test; spf=pass smtp.mailfrom=x@spf-fail.test\r\n"
                   "Subject: tok-large-forged\r\n\r\n" + body)
    ar = auth_results(delivered(mx, "tok-large-forged"))
    assert len(ar) == 1 and "spf=fail" in ar[0], ar
    (path,) = [p for p in mx.mail("demo@example.test") if "tok-large-forged" in open(p, errors="replace").read()]
    stored = open(path, "rb").read()
    assert stored.split(b"\n\n", 1)[1] == body.replace("\r\n", "\n").encode()
    assert "removed 1 Authentication-Results header(s) claiming mx.test" in mx.log("smtpd")


def test_spf_joins_the_dkim_and_dmarc_results_in_one_field(host, dns):
    # RFC 8601: one field of ours, the SPF result first, then DKIM and DMARC; forged ones still go.
    ip, port = dns
    host.set(smtpd_spf_policy="record", smtpd_dkim_verify="yes", smtpd_dmarc="record", dns_servers=f"{ip}:{port}",
             dns_timeout="2s", smtpd_spf_timeout="5s", smtpd_dkim_timeout="5s")
    host.start("mda", "qmgr", "smtpd")
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), local_hostname="client.test", timeout=30) as s:
        s.sendmail("x@spf-pass.test", ["demo@example.test"],
                   "Authentication-Results: mx.test; spf=fail smtp.mailfrom=x@spf-pass.test\r\n"
                   "Authentication-Results: elsewhere.test; dkim=pass\r\n"
                   "From: a@spf-pass.test\r\nSubject: tok-joined\r\n\r\ntok-joined\r\n")
    ar = auth_results(delivered(host, "tok-joined"))
    assert len(ar) == 2, ar
    assert re.fullmatch(r"Authentication-Results: mx\.test; spf=pass \([^)]*\) smtp\.mailfrom=x@spf-pass\.test; "
                        r"dkim=none; dmarc=none header\.from=spf-pass\.test", ar[0]), ar
    assert ar[1] == "Authentication-Results: elsewhere.test; dkim=pass", ar
    assert "removed 1 Authentication-Results header(s) claiming mx.test" in host.log("smtpd")
