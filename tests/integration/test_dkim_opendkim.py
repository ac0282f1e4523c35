"""DKIM interop with OpenDKIM (Debian's opendkim and opendkim-tools): mail that ferry-relay signs
(RSA-SHA256 and Ed25519-SHA256; and ferry's signer in each simple/relaxed canonicalisation, through
tests/tools/dkim-sign) verifies in OpenDKIM; mail that OpenDKIM signs (RSA-SHA256 with an
opendkim-genkey key, each of the four simple/relaxed canonicalisations) verifies in ferry-smtpd, and
so does the Ed25519 message of RFC 8463 that OpenDKIM verifies; a changed body or signed header
fails on both sides. Keys are published by a real dnsmasq. OpenDKIM runs as its filter's test mode
(-t) with a private configuration: opendkim-testmsg can neither be pointed at a DNS server nor sign
with SHA-256, while the filter's resolver (libunbound) takes a configuration naming the dnsmasq."""
import os
import re
import shutil
import smtplib
import subprocess
import tempfile

import pytest

from ferry_harness import SmtpSink, binary, start_dnsmasq, transport_map, wait_until

pytestmark = pytest.mark.skipif(not shutil.which("opendkim") or not shutil.which("opendkim-genkey"),
                                reason="OpenDKIM (Debian packages opendkim, opendkim-tools) is not installed")

DEMO = "demo@example.test"

# Canonicalisation hazards: runs of spaces and tabs, trailing white space, a folded field, a line
# that starts with a dot or a space, empty lines at the end of the body. Each field has one space
# after its colon: OpenDKIM signs and verifies any run there as one space (the milter protocol drops
# it), which simple header canonicalisation (RFC 6376 3.4.1) and so ferry do not.
MESSAGE = ("From: Demo <demo@example.test>\n"
           "To: bob@remote.test\n"
           "Subject: Interop   test\twith tabs  \n"
           "Date: Sat, 28 Nov 2026 03:00:00 +0000\n"
           "Message-ID: <interop-1@example.test>\n"
           "X-Folded: first part\n"
           "  second part\n"
           "MIME-Version: 1.0\n"
           "Content-Type: text/plain; charset=us-ascii\n"
           "\n"
           "Hello  Bob,\ttab\n"
           "trailing spaces   \n"
           " leading space\n"
           "\n"
           ".a line with a dot\n"
           "see you.\n"
           "\n"
           "\n")


# RFC 8463 appendix A: a message with an Ed25519 and an RSA signature, and the Ed25519 key.
RFC8463 = ("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\n"
           " d=football.example.com; i=@football.example.com;\n"
           " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\n"
           " subject : date : message-id : from : subject : date;\n"
           " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\n"
           " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\n"
           " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\n"
           "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\n"
           " d=football.example.com; i=@football.example.com;\n"
           " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\n"
           " date : message-id : from : subject : date;\n"
           " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\n"
           " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\n"
           " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\n"
           " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\n"
           "From: Joe SixPack <joe@football.example.com>\n"
           "To: Suzie Q <suzie@shopping.example.net>\n"
           "Subject: Is dinner ready?\n"
           "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\n"
           "Message-ID: <20030712040037.46341.5F8J@football.example.com>\n"
           "\n"
           "Hi.\n"
           "\n"
           "We lost the game.  Are you hungry yet?\n"
           "\n"
           "Joe.\n")
RFC8463_KEY = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def record_value(output):
    """The TXT value printed by `ferry-admin dkim generate` or in opendkim-genkey's .txt: its quoted strings joined."""
    return "".join(re.findall(r'"([^"]*)"', output))


def zone_line(name, value):
    parts = ",".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return f"txt-record={name},{parts}\n"


class Dns:
    """dnsmasq serving `zone`; stop() ends it."""

    def __init__(self, zone):
        self.proc, self.ip, self.port, self.dir = start_dnsmasq(zone)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def opendkim_run(conf_lines, message, workdir, *flags):
    """Runs OpenDKIM's filter in test mode over `message` with a configuration of `conf_lines`:
    (exit status, everything it printed). Signing prints the new field; -vv prints the added one."""
    conf = os.path.join(workdir, "opendkim.conf")
    with open(conf, "w") as f:
        f.write("Syslog no\nRequireSafeKeys no\n" + "".join(line + "\n" for line in conf_lines))
    path = os.path.join(workdir, "message.eml")
    with open(path, "w") as f:
        f.write(message)
    p = subprocess.run(["opendkim", "-x", conf, *flags, "-t", path], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def opendkim_verify(message, dns, workdir):
    """OpenDKIM's Authentication-Results value for `message` (unfolded), keys from `dns`."""
    unbound = os.path.join(workdir, "unbound.conf")
    with open(unbound, "w") as f:
        # libunbound serves .test itself (RFC 6761) and never asks loopback servers unless told.
        f.write(f'server:\n\tdo-not-query-localhost: no\n\tmodule-config: "iterator"\n\tlocal-zone: "test." nodefault\n'
                f'forward-zone:\n\tname: "."\n\tforward-addr: {dns.ip}@{dns.port}\n')
    rc, out = opendkim_run(["Mode v", f"ResolverConfiguration {unbound}", "AuthservID opendkim.test",
                            "AlwaysAddARHeader yes"], message, workdir, "-vv")
    assert rc == 0, out
    m = re.search(r"hname='Authentication-Results' hvalue='([^']*)'", out)
    assert m, out
    return " ".join(m.group(1).split())


def opendkim_sign(message, key, domain, selector, canon, algorithm, workdir):
    """`message` with the DKIM-Signature: field that OpenDKIM puts on top of it."""
    rc, out = opendkim_run(["Mode s", f"Domain {domain}", f"Selector {selector}", f"KeyFile {key}",
                            f"Canonicalization {canon}", f"SignatureAlgorithm {algorithm}"], message, workdir)
    assert rc == 0, out
    m = re.search(r"^DKIM-Signature:.*?(?=^\S|\Z)", out, re.M | re.S)
    assert m, out
    field = m.group(0)
    assert f"a={algorithm}; c={canon}; d={domain}; s={selector};" in " ".join(field.split()), field
    return field if field.endswith("\n") else field + "\n"


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="fy-opendkim-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def submit(f, msg):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.login(DEMO, "demo-secret")
        s.sendmail(DEMO, ["bob@remote.test"], msg.replace("\n", "\r\n").encode())


# ferry signs, OpenDKIM verifies.

@pytest.mark.parametrize("flags,algorithm", [((), "rsa-sha256"), (("--ed25519",), "ed25519-sha256")],
                         ids=["rsa", "ed25519"])
def test_mail_signed_by_ferry_verifies_in_opendkim(host, workdir, flags, algorithm):
    out = host.admin("dkim", "generate", "example.test", "f1", *flags).stdout
    dns = Dns(zone_line("f1._domainkey.example.test", record_value(out)))
    sink = SmtpSink()
    try:
        transport_map(host, {"remote.test": f"{sink.addr}:25"})
        host.start("mda", "relay", "qmgr", "smtpd")
        submit(host, MESSAGE)
        wait_until(lambda: sink.messages(), 30, "message at the sink")
        dumped = sink.messages()[0].decode()
        # The message as ferry-relay sent it: its DKIM-Signature: on top (smtp-sink's own lines above).
        sent = dumped[dumped.index("DKIM-Signature:"):]
        assert "c=relaxed/relaxed" in sent.split("\n\n", 1)[0]
        result = opendkim_verify(sent, dns, workdir)
        assert re.search(rf"dkim=pass .*header\.d=example\.test .*header\.a={algorithm} header\.s=f1\b", result), result
        # The test can fail: OpenDKIM does refuse a changed body and a changed signed header.
        body = opendkim_verify(sent.replace("see you.", "see you never."), dns, workdir)
        assert "dkim=fail" in body and "header.d=example.test" in body, body
        header = opendkim_verify(sent.replace("Interop   test", "Interop test changed"), dns, workdir)
        assert "dkim=fail" in header, header
    finally:
        sink.stop()
        dns.stop()


# OpenDKIM signs, ferry-smtpd verifies.

@pytest.fixture(scope="module")
def opendkim_keys():
    """OpenDKIM's signing key for od.test (od1, RSA, from opendkim-genkey) and RFC 8463's Ed25519 key,
    published by a dnsmasq."""
    d = tempfile.mkdtemp(prefix="fy-opendkim-keys-", dir="/tmp")
    subprocess.run(["opendkim-genkey", "--bits=2048", "--domain=od.test", "--selector=od1", f"--directory={d}"],
                   check=True, capture_output=True, timeout=60)
    zone = zone_line("od1._domainkey.od.test", record_value(open(os.path.join(d, "od1.txt")).read()))
    zone += "local=/football.example.com/\n" + zone_line("brisbane._domainkey.football.example.com", RFC8463_KEY)
    dns = Dns(zone)
    yield {"rsa-sha256": (os.path.join(d, "od1.private"), "od1"), "dns": dns}
    dns.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("canon", ["simple/simple", "relaxed/relaxed", "relaxed/simple", "simple/relaxed"])
def test_each_canonicalisation_of_ferrys_signer_verifies_in_opendkim(opendkim_keys, workdir, canon):
    # ferry-relay signs relaxed/relaxed; tests/tools/dkim-sign drives the same signer with any.
    key, selector = opendkim_keys["rsa-sha256"]
    message = MESSAGE.replace("@example.test", "@od.test")
    p = subprocess.run([binary("dkim-sign"), key, "od.test", selector, canon], input=message, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert f"c={canon};" in p.stdout
    signed = p.stdout + message
    dns = opendkim_keys["dns"]
    result = opendkim_verify(signed, dns, workdir)
    assert re.search(r"dkim=pass .*header\.d=od\.test .*header\.s=od1\b", result), result
    assert "dkim=fail" in opendkim_verify(signed.replace("see you.", "see you never."), dns, workdir)
    assert "dkim=fail" in opendkim_verify(signed.replace("Interop   test", "Interop test changed"), dns, workdir)
    # White space that only relaxed canonicalisation forgives.
    body_space = opendkim_verify(signed.replace("Hello  Bob,\ttab", "Hello Bob, tab"), dns, workdir)
    assert ("dkim=pass" if canon.endswith("/relaxed") else "dkim=fail") in body_space, body_space
    header_space = opendkim_verify(signed.replace("Interop   test\twith tabs  ", "Interop test with tabs"), dns, workdir)
    assert ("dkim=pass" if canon.startswith("relaxed/") else "dkim=fail") in header_space, header_space


def receiving(host, dns):
    host.set(smtpd_dkim_verify="yes", dns_servers=f"{dns.ip}:{dns.port}", dns_timeout="2s", smtpd_dkim_timeout="5s",
             smtpd_dmarc="off")
    host.start("mda", "qmgr", "smtpd")


def deliver_cases(host, cases):
    """Sends each message of `cases` (name: text) to demo@example.test with an X-Case: field on top
    (not signed); returns name: the unfolded Authentication-Results field of mx.test at delivery."""
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), local_hostname="client.test", timeout=30) as s:
        for name, text in cases.items():
            s.sendmail("x@od.test", [DEMO], (f"X-Case: {name}\n" + text).replace("\n", "\r\n").encode())
    paths = host.wait_mail(DEMO, len(cases), timeout=30)
    out = {}
    for path in paths:
        head = open(path).read().split("\n\n", 1)[0].replace("\n\t", " ").replace("\n ", " ")
        name = re.search(r"^X-Case: (\S+)", head, re.M).group(1)
        [out[name]] = [h for h in head.splitlines() if h.startswith("Authentication-Results: mx.test;")]
    return out


@pytest.mark.parametrize("canon", ["simple/simple", "relaxed/relaxed", "relaxed/simple", "simple/relaxed"])
def test_mail_signed_by_opendkim_verifies_in_ferry(host, opendkim_keys, workdir, canon):
    key, selector = opendkim_keys["rsa-sha256"]
    message = MESSAGE.replace("@example.test", "@od.test")  # OpenDKIM signs mail from its Domain only
    signed = opendkim_sign(message, key, "od.test", selector, canon, "rsa-sha256", workdir) + message
    header_canon, body_canon = canon.split("/")
    passed = "dkim=pass header.d=od.test header.s=od1 header.b="
    body_fail = "dkim=fail (body hash mismatch) header.d=od.test header.s=od1"
    header_fail = "dkim=fail (signature does not verify) header.d=od.test header.s=od1"
    cases = {
        "intact": (signed, passed),
        "body": (signed.replace("see you.", "see you never."), body_fail),
        "header": (signed.replace("Interop   test", "Interop test changed"), header_fail),
        # White space that relaxed canonicalisation forgives and simple does not.
        "body-space": (signed.replace("Hello  Bob,\ttab", "Hello Bob, tab"),
                       passed if body_canon == "relaxed" else body_fail),
        "header-space": (signed.replace("Subject: Interop   test\twith tabs  ", "Subject: Interop test with tabs"),
                         passed if header_canon == "relaxed" else header_fail),
    }
    receiving(host, opendkim_keys["dns"])
    results = deliver_cases(host, {name: text for name, (text, _) in cases.items()})
    for name, (_, expected) in cases.items():
        assert expected in results[name], (name, results[name])


def test_ed25519_signature_that_opendkim_accepts_passes_in_ferry(host, opendkim_keys, workdir):
    # OpenDKIM 2.11 signs Ed25519 wrongly (its own verifier rejects what it signs, and so does
    # RFC 8463's algorithm), so the Ed25519 message here is RFC 8463's example, which it verifies.
    dns = opendkim_keys["dns"]
    assert re.search(r"dkim=pass header\.d=football\.example\.com .*header\.a=ed25519-sha256 header\.s=brisbane\b",
                     opendkim_verify(RFC8463, dns, workdir))
    receiving(host, dns)
    results = deliver_cases(host, {"intact": RFC8463, "body": RFC8463.replace("We lost", "We won"),
                                   "header": RFC8463.replace("Is dinner ready?", "Is lunch ready?")})
    signature = "header.d=football.example.com header.s=brisbane"
    assert f"dkim=pass {signature} header.b=" in results["intact"], results
    assert f"dkim=fail (body hash mismatch) {signature}" in results["body"], results
    assert f"dkim=fail (signature does not verify) {signature}" in results["header"], results
