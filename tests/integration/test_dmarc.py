"""DMARC end to end: ferry-smtpd with SPF and DMARC records served by a real dnsmasq, ferry-mda filing.
A pass is delivered; a fail under p=reject is refused (550 5.7.1) with smtpd_dmarc=reject; a fail under
p=quarantine (or p=reject outside pct=) lands in Junk, unless Sieve keeps it; sp= for subdomains;
relaxed and strict SPF and DKIM alignment (messages signed with dkimpy); the organisational domain
under a two-label public suffix. The verdict table (pct= sampling, public suffix edge cases such as
a domain that is itself a suffix) is tests/unit/test_dmarc.cpp."""
import os
import re
import shutil
import smtplib

import pytest

from ferry_harness import dnsmasq, start_dnsmasq, wait_until

DEMO = "demo@example.test"


def spf(domain):
    return f'txt-record={domain},"v=spf1 ip4:127.0.0.0/8 -all"\n'


def policy(domain, record):
    return f'txt-record=_dmarc.{domain},"{record}"\n'


ZONE = "".join([
    # Senders whose SPF passes from 127.0.0.1; none of them has a DMARC record of its own.
    spf("aligned.test"), spf("other.test"), spf("bounce.relaxed.test"), spf("bounce.strict.test"),
    spf("mail.example.co.uk"), spf("other.co.uk"),
    policy("aligned.test", "v=DMARC1; p=reject"),
    policy("reject.test", "v=DMARC1; p=reject"),
    policy("quarantine.test", "v=DMARC1; p=quarantine"),
    policy("pct0.test", "v=DMARC1; p=reject; pct=0"),
    # sp= for subdomains: found through the organisational domain's record.
    policy("org.test", "v=DMARC1; p=none; sp=quarantine"),
    policy("sprej.test", "v=DMARC1; p=none; sp=reject"),
    policy("relaxed.test", "v=DMARC1; p=reject"),
    policy("strict.test", "v=DMARC1; p=reject; aspf=s"),
    # co.uk is a public suffix: example.co.uk is the organisational domain of a.b.example.co.uk.
    "local=/co.uk/\n",
    policy("example.co.uk", "v=DMARC1; p=reject"),
])


@pytest.fixture(scope="module")
def dns():
    with dnsmasq(ZONE) as server:
        yield server


def configure(host, dns, mode):
    ip, port = dns
    host.set(smtpd_spf_policy="record", smtpd_dkim_verify="yes", smtpd_dmarc=mode, dns_servers=f"{ip}:{port}",
             dns_timeout="2s", smtpd_spf_timeout="5s", smtpd_dkim_timeout="5s")


@pytest.fixture
def mx(host, dns):
    """ferry with SPF and DMARC enforced (smtpd_dmarc = reject); mda, qmgr and smtpd running."""
    configure(host, dns, "reject")
    host.start("mda", "qmgr", "smtpd")
    return host


def send(f, sender, author, token, headers=""):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), local_hostname="client.test", timeout=30) as s:
        s.sendmail(sender, [DEMO], f"From: <{author}>\r\nSubject: {token}\r\n{headers}\r\n{token}\r\n")


def refused(f, sender, author, token):
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(f, sender, author, token)
    return e.value


def folder_of(f, token):
    """(folder, unfolded header lines) of the delivered message holding `token`: "INBOX" or "Junk"."""
    root = f.maildir(DEMO)

    def find():
        for d, _, files in os.walk(root):
            if os.path.basename(d) not in ("new", "cur"):
                continue
            for name in files:
                text = open(os.path.join(d, name), errors="replace").read()
                if token in text:
                    parent = os.path.basename(os.path.dirname(d))
                    return ("INBOX" if parent == "Maildir" else parent.lstrip(".")), text
        return None
    wait_until(lambda: find() is not None, 15, f"message {token} delivered")
    folder, text = find()
    head = text.split("\n\n", 1)[0]
    return folder, head.replace("\n\t", " ").replace("\n ", " ").splitlines()


def dmarc_of(headers):
    """The dmarc resinfo of our Authentication-Results field(s): "dmarc=... header.from=... [policy.dmarc=...]"."""
    for h in headers:
        if h.startswith("Authentication-Results: mx.test;"):
            m = re.search(r"(?<![\w.])dmarc=[^;]*", h)
            if m:
                return m.group(0).strip()
    return None


def not_delivered(f, token):
    for d, _, files in os.walk(f.maildir(DEMO)):
        for name in files:
            assert token not in open(os.path.join(d, name), errors="replace").read()


def test_aligned_spf_pass_is_delivered(mx):
    send(mx, "x@aligned.test", "ann@aligned.test", "pass-1")
    folder, headers = folder_of(mx, "pass-1")
    assert folder == "INBOX"
    assert dmarc_of(headers) == "dmarc=pass (p=reject) header.from=aligned.test"


def test_fail_under_p_reject_is_refused(mx):
    e = refused(mx, "x@other.test", "ann@reject.test", "reject-1")
    assert e.smtp_code == 550 and b"5.7.1" in e.smtp_error and b"DMARC policy of reject.test" in e.smtp_error
    assert re.search(r"dmarc=fail header\.from=reject\.test p=reject", mx.log("smtpd"))
    send(mx, "x@aligned.test", "ann@aligned.test", "after-reject")  # the session goes on
    folder_of(mx, "after-reject")
    not_delivered(mx, "reject-1")


def test_fail_under_p_quarantine_lands_in_junk(mx):
    send(mx, "x@other.test", "ann@quarantine.test", "quarantine-1")
    folder, headers = folder_of(mx, "quarantine-1")
    assert folder == "Junk"
    assert dmarc_of(headers) == "dmarc=fail (p=quarantine) header.from=quarantine.test policy.dmarc=quarantine"
    # No spam score was needed for it (the spam check is off here).
    assert not [h for h in headers if h.lower().startswith("x-spam-score")]


def test_sieve_keep_overrides_the_quarantine(mx):
    d = os.path.join(mx.maildir(DEMO), "sieve")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "rules.sieve"), "w") as out:
        out.write('if header :contains "subject" "keep-me" { keep; }\n')
    os.symlink("rules.sieve", os.path.join(d, "active"))
    send(mx, "x@other.test", "ann@quarantine.test", "keep-me-1")
    send(mx, "x@other.test", "ann@quarantine.test", "junk-me-1")
    assert folder_of(mx, "keep-me-1")[0] == "INBOX"
    assert folder_of(mx, "junk-me-1")[0] == "Junk"


def test_p_reject_outside_pct_is_quarantined(mx):
    # pct=0: no message is sampled for reject, so each gets the next lower policy (RFC 7489 6.6.4).
    send(mx, "x@other.test", "ann@pct0.test", "pct-1")
    folder, headers = folder_of(mx, "pct-1")
    assert folder == "Junk"
    assert dmarc_of(headers) == "dmarc=fail (p=reject) header.from=pct0.test policy.dmarc=quarantine"


def test_subdomain_policy(mx):
    # org.test: p=none for itself, sp=quarantine for its subdomains.
    send(mx, "x@other.test", "ann@org.test", "sp-1")
    send(mx, "x@other.test", "ann@mail.org.test", "sp-2")
    folder, headers = folder_of(mx, "sp-1")
    assert (folder, dmarc_of(headers)) == ("INBOX", "dmarc=fail (p=none) header.from=org.test")
    folder, headers = folder_of(mx, "sp-2")
    assert (folder, dmarc_of(headers)) == (
        "Junk", "dmarc=fail (p=quarantine) header.from=mail.org.test policy.dmarc=quarantine")
    # sprej.test: p=none, sp=reject.
    send(mx, "x@other.test", "ann@sprej.test", "sp-3")
    assert folder_of(mx, "sp-3")[0] == "INBOX"
    e = refused(mx, "x@other.test", "ann@a.b.sprej.test", "sp-4")
    assert e.smtp_code == 550 and b"DMARC policy of a.b.sprej.test" in e.smtp_error


def test_relaxed_and_strict_spf_alignment(mx):
    # The bounce subdomain's SPF pass aligns with the parent From: domain only in relaxed mode.
    send(mx, "x@bounce.relaxed.test", "ann@relaxed.test", "relaxed-1")
    folder, headers = folder_of(mx, "relaxed-1")
    assert (folder, dmarc_of(headers)) == ("INBOX", "dmarc=pass (p=reject) header.from=relaxed.test")
    e = refused(mx, "x@bounce.strict.test", "ann@strict.test", "strict-1")
    assert e.smtp_code == 550 and b"DMARC policy of strict.test" in e.smtp_error


def test_organisational_domain_under_a_public_suffix(mx):
    # a.b.example.co.uk has no record: example.co.uk's applies, and mail.example.co.uk aligns with it.
    send(mx, "x@mail.example.co.uk", "ann@a.b.example.co.uk", "psl-1")
    folder, headers = folder_of(mx, "psl-1")
    assert (folder, dmarc_of(headers)) == ("INBOX", "dmarc=pass (p=reject) header.from=a.b.example.co.uk")
    # other.co.uk is a sibling under the suffix, not the same organisation.
    e = refused(mx, "x@other.co.uk", "ann@example.co.uk", "psl-2")
    assert e.smtp_code == 550 and b"DMARC policy of example.co.uk" in e.smtp_error


def test_forged_quarantine_verdict_is_removed(mx):
    forged = "Authentication-Results: mx.test; dmarc=fail (p=quarantine) header.from=aligned.test policy.dmarc=quarantine\r\n"
    send(mx, "x@aligned.test", "ann@aligned.test", "forged-1", headers=forged)
    folder, headers = folder_of(mx, "forged-1")
    assert folder == "INBOX"
    assert dmarc_of(headers) == "dmarc=pass (p=reject) header.from=aligned.test"
    assert not any("policy.dmarc" in h for h in headers)


def test_record_mode_only_records(host, dns):
    configure(host, dns, "record")
    host.start("mda", "qmgr", "smtpd")
    send(host, "x@other.test", "ann@reject.test", "record-1")
    send(host, "x@other.test", "ann@quarantine.test", "record-2")
    folder, headers = folder_of(host, "record-1")
    assert (folder, dmarc_of(headers)) == ("INBOX", "dmarc=fail (p=reject) header.from=reject.test")
    folder, headers = folder_of(host, "record-2")
    assert (folder, dmarc_of(headers)) == ("INBOX", "dmarc=fail (p=quarantine) header.from=quarantine.test")


def test_relaxed_and_strict_dkim_alignment(host):
    """Messages signed here (dkimpy, Debian's python3-dkim) with a key of ferry-admin's, published by a
    dnsmasq of this test; no SPF pass, so only the DKIM signature can align."""
    dkim = pytest.importorskip("dkim")
    from test_dkim import record_value, zone_line
    value = record_value(host.admin("dkim", "generate", "keys.test", "s1").stdout)
    key = open(os.path.join(host.keys["state_dir"], "dkim", "keys.test", "s1.key"), "rb").read()
    zone = "".join(zone_line(f"s1._domainkey.{d}", value) for d in ("mail.dk.test", "mail.dks.test", "dks.test"))
    zone += policy("dk.test", "v=DMARC1; p=reject") + policy("dks.test", "v=DMARC1; p=reject; adkim=s")
    p, ip, port, d = start_dnsmasq(zone)
    try:
        configure(host, (ip, port), "reject")
        host.start("mda", "qmgr", "smtpd")

        def signed(domain, author, token):
            msg = f"From: <{author}>\r\nTo: <{DEMO}>\r\nSubject: {token}\r\n\r\n{token}\r\n".encode()
            sig = dkim.sign(msg, b"s1", domain.encode(), key, include_headers=[b"from", b"to", b"subject"])
            with smtplib.SMTP("127.0.0.1", host.port("smtp"), local_hostname="client.test", timeout=30) as s:
                s.sendmail("x@nospf.test", [DEMO], sig + msg)

        # Relaxed: a signature of mail.dk.test aligns with From: dk.test.
        signed("mail.dk.test", "ann@dk.test", "adkim-r-1")
        folder, headers = folder_of(host, "adkim-r-1")
        assert (folder, dmarc_of(headers)) == ("INBOX", "dmarc=pass (p=reject) header.from=dk.test")
        assert any("dkim=pass header.d=mail.dk.test" in h for h in headers)
        # Strict: mail.dks.test does not align with dks.test; dks.test itself does.
        with pytest.raises(smtplib.SMTPDataError) as e:
            signed("mail.dks.test", "ann@dks.test", "adkim-s-1")
        assert e.value.smtp_code == 550 and b"DMARC policy of dks.test" in e.value.smtp_error
        signed("dks.test", "ann@dks.test", "adkim-s-2")
        folder, headers = folder_of(host, "adkim-s-2")
        assert (folder, dmarc_of(headers)) == ("INBOX", "dmarc=pass (p=reject) header.from=dks.test")
    finally:
        p.terminate()
        p.wait(5)
        shutil.rmtree(d, ignore_errors=True)
