"""ARC with another implementation: dkimpy (Debian python3-dkim) seals chains of one and two sets that
ferry-smtpd verifies, and ferry-relay seals mail a ferry forwards (an alias to an outside address),
which dkimpy's arc_verify and a second ferry accept. Keys are published by a real dnsmasq."""
import base64
import os
import re
import shutil
import smtplib
import subprocess

import pytest

from ferry_harness import Ferry, loopback_host, start_dnsmasq, wait_port

dkim = pytest.importorskip("dkim", reason="dkimpy (Debian package python3-dkim) is not installed")
pytest.importorskip("authres", reason="dkimpy's arc_sign needs authres (Debian package python3-authres)")

BOB = "bob@remote.test"
MESSAGE = ("From: Ann <ann@origin.test>\r\nTo: list@forwarder.test\r\nSubject: via the list\r\n"
           "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <m1@origin.test>\r\n\r\n"
           "Hello  list,  \r\n\r\nsee you.\r\n")


def rsa_key(path):
    """A 2048-bit RSA key in PKCS#1 PEM (what dkimpy reads) and its DKIM record value."""
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", path, "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", path, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return open(path, "rb").read(), "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def zone_line(name, value):
    parts = ",".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return f"txt-record={name},{parts}\n"


def record_value(output):
    """The TXT value printed by `ferry-admin dkim generate`: its quoted strings joined."""
    return "".join(re.findall(r'"([^"]*)"', output))


class Zone:
    """TXT records for dnsmasq and for dkimpy's dnsfunc alike."""

    def __init__(self):
        self.records = {}

    def add(self, name, value):
        self.records[name] = value

    def dnsmasq(self):
        return "".join(zone_line(n, v) for n, v in self.records.items())

    def dnsfunc(self, name, timeout=5):
        value = self.records.get(name.decode().rstrip("."))
        return value.encode() if value else None


def arc_seal(message, key, domain, selector, srv_id, results):
    """`message` (bytes, CRLF) with `srv_id`'s Authentication-Results on top, sealed by dkimpy."""
    message = f"Authentication-Results: {srv_id}; {results}\r\n".encode() + message
    fields = dkim.arc_sign(message, selector.encode(), domain.encode(), key, srv_id.encode(),
                           include_headers=[b"from", b"to", b"subject", b"date"])
    assert len(fields) == 3, "dkimpy made no ARC set"
    return b"".join(fields) + message


def results_field(text, authserv_id="mx.remote.test"):
    header = text.split("\n\n", 1)[0].replace("\n\t", " ").replace("\n ", " ").splitlines()
    [field] = [h for h in header if h.startswith(f"Authentication-Results: {authserv_id};") and "dkim=" in h]
    return field


def as_sent(text):
    """The message as the sender sent it to the receiver: from its topmost ARC-Seal on, in CRLF."""
    return text[text.index("ARC-Seal:"):].replace("\n", "\r\n").encode()


@pytest.fixture
def keys(tmp_path):
    """Two outside sealers (list.test, relay2.test) and the author's domain origin.test (DKIM, p=reject)."""
    zone = Zone()
    made = {}
    for name, domain, selector in (("list", "list.test", "arc1"), ("relay2", "relay2.test", "arc2"),
                                   ("origin", "origin.test", "s1")):
        pem, record = rsa_key(str(tmp_path / f"{name}.pem"))
        zone.add(f"{selector}._domainkey.{domain}", record)
        made[name] = pem
    zone.add("_dmarc.origin.test", "v=DMARC1; p=reject")
    return zone, made


def start_receiver(zone, dmarc="reject"):
    """A ferry for remote.test verifying DKIM, DMARC and ARC; returns (ferry, dnsmasq)."""
    p, ip, port, d = start_dnsmasq(zone.dnsmasq())
    f = Ferry()
    f.addr = loopback_host()
    f.set(hostname="mx.remote.test", smtpd_listen=f"{f.addr}:25", smtpd_dkim_verify="yes",
          dns_servers=f"{ip}:{port}", dns_timeout="2s", smtpd_dkim_timeout="5s", smtpd_dmarc=dmarc)
    f.add_domain("remote.test")
    f.add_account(BOB, "bob-secret")
    f.start("mda", "qmgr", "smtpd")
    wait_port(f.addr)
    return f, (p, d, ip, port)


def stop_dns(dns):
    p, d = dns[0], dns[1]
    p.terminate()
    p.wait(5)
    shutil.rmtree(d, ignore_errors=True)


def signed_by_origin(key, body=MESSAGE):
    message = body.encode()
    return dkim.sign(message, b"s1", b"origin.test", key, include_headers=[b"from", b"to", b"subject", b"date"]) + message


def test_dkimpy_chains_of_one_and_two_sets_verify_in_ferry(keys):
    zone, key = keys
    one = arc_seal(MESSAGE.encode(), key["list"], "list.test", "arc1", "mx.list.test", "spf=pass smtp.mailfrom=origin.test")
    two = arc_seal(one.replace(b"see you.", b"see you, from the list."), key["relay2"], "relay2.test", "arc2",
                   "mx.relay2.test", "arc=pass (i=1)")
    # The second sealer changed the body: the first AMS no longer matches, the chain still passes.
    assert dkim.arc_verify(one, dnsfunc=zone.dnsfunc)[0] == dkim.CV_Pass
    assert dkim.arc_verify(two, dnsfunc=zone.dnsfunc)[0] == dkim.CV_Pass
    assert b"ARC-Seal: i=2; cv=pass;" in two
    # A changed seal input: the AAR of instance 1, which both seals sign.
    tampered = two.replace(b"spf=pass smtp.mailfrom=origin.test", b"spf=fail smtp.mailfrom=origin.test", 1)
    assert dkim.arc_verify(tampered, dnsfunc=zone.dnsfunc)[0] == dkim.CV_Fail
    # Unsigned by origin.test, whose p=reject would refuse them: DMARC is not what is tested here.
    f, dns = start_receiver(zone, dmarc="off")
    try:
        with smtplib.SMTP(f.addr, 25, timeout=30) as s:
            for m in (one, two, tampered):
                s.sendmail("ann@origin.test", [BOB], m)
        texts = [open(p).read() for p in f.wait_mail(BOB, 3, timeout=30)]
    finally:
        f.cleanup()
        stop_dns(dns)
    got_one = next(t for t in texts if "ARC-Seal: i=2" not in t)
    got_two = next(t for t in texts if "ARC-Seal: i=2" in t and "spf=fail" not in t)
    got_tampered = next(t for t in texts if "spf=fail smtp.mailfrom" in t)
    assert re.search(r"; arc=pass \(i=1 d=list\.test\) smtp\.remote-ip=127\.", results_field(got_one))
    assert re.search(r"; arc=pass \(i=2 d=relay2\.test\) smtp\.remote-ip=127\.", results_field(got_two))
    assert re.search(r"; arc=fail \(i=2 d=relay2\.test: ARC-Seal \d: signature", results_field(got_tampered)), \
        results_field(got_tampered)


@pytest.fixture
def forwarding(host, keys):
    """host as mx.forwarder.test: list@forwarder.test is an alias of bob@remote.test on a second ferry;
    forwarder.test has a DKIM key (selector fw1). Returns (forwarder, receiver, zone, keys)."""
    zone, key = keys
    host.set(hostname="mx.forwarder.test")
    host.add_domain("forwarder.test")
    host.admin("alias", "add", "list@forwarder.test", BOB)
    out = host.admin("dkim", "generate", "forwarder.test", "fw1").stdout
    zone.add("fw1._domainkey.forwarder.test", record_value(out))
    receiver, dns = start_receiver(zone)
    try:
        transport = os.path.join(host.root, "transport")
        with open(transport, "w") as fp:
            fp.write(f"remote.test  [{receiver.addr}]:25\n")
        host.set(smtpd_dkim_verify="yes", smtpd_dmarc="reject", dns_servers=f"{dns[2]}:{dns[3]}", dns_timeout="2s",
                 smtpd_dkim_timeout="5s", relay_transport_map=transport, relay_connect_timeout="3s",
                 relay_greeting_timeout="5s", relay_mail_timeout="5s", relay_rcpt_timeout="5s",
                 relay_data_timeout="5s", relay_data_block_timeout="5s", relay_data_done_timeout="10s")
        host.start("mda", "relay", "qmgr", "smtpd")
        yield host, receiver, zone, key
    finally:
        receiver.cleanup()
        stop_dns(dns)


def test_forwarded_mail_is_sealed_and_verifies_in_dkimpy_and_ferry(forwarding):
    host, receiver, zone, key = forwarding
    direct = signed_by_origin(key["origin"])
    # A message that came through a list which sealed it (i=1): the forwarder continues the chain.
    listed = arc_seal(signed_by_origin(key["origin"], MESSAGE.replace("see you.", "see you, listed.")), key["list"],
                      "list.test", "arc1", "mx.list.test", "dkim=pass header.d=origin.test")
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("ann@origin.test", ["list@forwarder.test"], direct)
        s.sendmail("ann@origin.test", ["list@forwarder.test"], listed)
        # The forwarder's own user: not forwarded mail, not sealed.
        s.login("demo@example.test", "demo-secret")
        s.sendmail("demo@example.test", [BOB], b"From: demo@example.test\r\nTo: bob@remote.test\r\nSubject: own\r\n\r\nmine\r\n")
    texts = [open(p).read() for p in receiver.wait_mail(BOB, 3, timeout=40)]
    one = next(t for t in texts if "see you.\n" in t)
    two = next(t for t in texts if "see you, listed." in t)
    own = next(t for t in texts if "Subject: own" in t)

    assert re.search(r"; arc=pass \(i=1 d=forwarder\.test\) smtp\.remote-ip=127\.", results_field(one)), results_field(one)
    assert "dkim=pass header.d=origin.test" in results_field(one)
    assert re.search(r"; arc=pass \(i=2 d=forwarder\.test\) smtp\.remote-ip=127\.", results_field(two)), results_field(two)
    assert "ARC-Seal" not in own, own
    assert "; arc=" not in results_field(own)
    # The set: cv= from the forwarder's check at receipt, its results copied into the AAR.
    assert re.search(r"^ARC-Seal: i=1; a=rsa-sha256; cv=none; d=forwarder\.test; s=fw1;", one, re.M)
    assert re.search(r"^ARC-Seal: i=2; a=rsa-sha256; cv=pass; d=forwarder\.test; s=fw1;", two, re.M)
    aar = re.search(r"^ARC-Authentication-Results: i=1; mx\.forwarder\.test;(.*?)\n(?!\t)", one, re.M | re.S).group(1)
    assert "dkim=pass header.d=origin.test" in aar and "dmarc=pass (p=reject) header.from=origin.test" in aar, aar
    aar2 = re.search(r"^ARC-Authentication-Results: i=2; mx\.forwarder\.test;(.*?)\n(?!\t)", two, re.M | re.S).group(1)
    assert "arc=pass (i=1 d=list.test)" in aar2, aar2

    for text, instances in ((one, 1), (two, 2)):
        cv, results, why = dkim.arc_verify(as_sent(text), dnsfunc=zone.dnsfunc)
        assert cv == dkim.CV_Pass, why
        assert len(results) == instances
    # A sealed AAR changed on the way fails in dkimpy too.
    tampered = as_sent(one).replace(b"dmarc=pass (p=reject)", b"dmarc=fail (p=reject)", 1)
    assert dkim.arc_verify(tampered, dnsfunc=zone.dnsfunc)[0] == dkim.CV_Fail
    log = host.log("relay")
    assert re.search(r"arc: sealed i=1 cv=none d=forwarder\.test s=fw1", log)
    assert re.search(r"arc: sealed i=2 cv=pass d=forwarder\.test s=fw1", log)


def test_arc_seal_off_and_no_key(forwarding):
    host, receiver, zone, key = forwarding
    host.set(arc_seal="no")
    host.restart("relay")
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("ann@origin.test", ["list@forwarder.test"], signed_by_origin(key["origin"]))
    [path] = receiver.wait_mail(BOB, 1, timeout=40)
    assert "ARC-Seal" not in open(path).read()
    # Sealing on, with a domain that has no key: sent unsealed, and the log says why.
    host.set(arc_seal="yes", arc_seal_domain="nokey.test")
    host.restart("relay")
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("ann@origin.test", ["list@forwarder.test"],
                   signed_by_origin(key["origin"], MESSAGE.replace("see you.", "no key.")))
    paths = receiver.wait_mail(BOB, 2, timeout=40)
    text = next(open(p).read() for p in paths if "no key." in open(p).read())
    assert "ARC-Seal" not in text
    host.wait_log("relay", r"arc: not sealed: no DKIM key for nokey\.test")


def test_a_sieve_redirect_is_sealed_by_the_redirecting_accounts_domain(forwarding):
    host, receiver, zone, key = forwarding
    alice = "alice@forwarder.test"
    host.add_account(alice, "alice-secret")
    d = os.path.join(host.maildir(alice), "sieve")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "rules.sieve"), "w") as f:
        f.write(f'redirect "{BOB}";\n')
    os.symlink("rules.sieve", os.path.join(d, "active"))
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("ann@origin.test", [alice], signed_by_origin(key["origin"], MESSAGE.replace("see you.", "redirected.")))
    [path] = receiver.wait_mail(BOB, 1, timeout=40)
    text = open(path).read()
    assert re.search(r"; arc=pass \(i=1 d=forwarder\.test\) smtp\.remote-ip=127\.", results_field(text)), results_field(text)
    assert "\nX-Ferry-Redirected: alice@forwarder.test\n" in text
    # ferry-mda submits the redirect as a daemon: the submit socket keeps our results for the seal.
    assert re.search(r"^ARC-Authentication-Results: i=1; mx\.forwarder\.test;[^\n]*(\n\t[^\n]*)*dkim=pass", text, re.M)
    cv, _, why = dkim.arc_verify(as_sent(text), dnsfunc=zone.dnsfunc)
    assert cv == dkim.CV_Pass, why
    host.wait_log("relay", r"arc: sealed i=1 cv=none d=forwarder\.test s=fw1")
