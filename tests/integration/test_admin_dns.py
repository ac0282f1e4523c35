"""ferry-admin dns, autoconfig and check: the records to publish parse as a zone, the client settings
name the configured ports, and check finds each fault against a dnsmasq-served domain."""
import os
import plistlib
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from ferry_harness import Ferry, loopback_host, make_cert, start_dnsmasq

DOMAIN = "check.test"
MX = "mx.check.test"


def zone_from(records, tmp_path):
    head = (f"$ORIGIN {DOMAIN}.\n$TTL 3600\n@ IN SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 3600\n"
            f"@ IN NS ns.{DOMAIN}.\nns IN A 192.0.2.53\n")
    path = tmp_path / "zone"
    path.write_text(head + records)
    return path


def checkzone(path):
    if not shutil.which("named-checkzone"):
        pytest.fail("named-checkzone is not installed (Debian package bind9-utils)")
    # Every check named-checkzone has made fatal: MX and SRV targets need addresses, no CNAME targets.
    return subprocess.run(["named-checkzone", "-i", "full", "-k", "fail", "-m", "fail", "-M", "fail", "-n", "fail",
                           "-S", "fail", DOMAIN, str(path)], capture_output=True, text=True, timeout=30)


@pytest.fixture
def advice(ferry):
    ferry.set(hostname=MX, smtpd_submission_listen="*:587", imapd_listen="*:143", imapd_tls_listen="[::]:993",
              popd_listen="127.0.0.1:110")
    return ferry


def test_dns_prints_records_that_make_a_valid_zone(advice, tmp_path):
    out = advice.admin("dns", DOMAIN, "--address", "192.0.2.10", "--address", "2001:db8::10").stdout
    assert re.search(rf"^{DOMAIN}\.\s+3600 IN MX\s+10 {MX}\.$", out, re.M)
    assert re.search(rf'^{DOMAIN}\.\s+3600 IN TXT\s+"v=spf1 mx -all"$', out, re.M)
    assert re.search(rf'^_dmarc\.{DOMAIN}\.\s+3600 IN TXT\s+"v=DMARC1; p=none; rua=mailto:postmaster@{DOMAIN}"$', out, re.M)
    assert re.search(rf'^_mta-sts\.{DOMAIN}\..*"v=STSv1; id=\d{{8}}T\d{{6}}"$', out, re.M)
    assert re.search(rf'^_smtp\._tls\.{DOMAIN}\..*"v=TLSRPTv1; rua=mailto:postmaster@{DOMAIN}"$', out, re.M)
    srv = dict(re.findall(rf"^_([a-z0-9]+)\._tcp\.{DOMAIN}\.\s+3600 IN SRV\s+(.*)$", out, re.M))
    assert srv == {"submission": f"0 1 587 {MX}.", "submissions": "0 0 0 .", "imap": f"0 1 143 {MX}.",
                   "imaps": f"0 1 993 {MX}.", "pop3": "0 0 0 .", "pop3s": "0 0 0 ."}, srv
    assert "no signing key" in out  # the DKIM hook, until ferry keeps keys
    r = checkzone(zone_from(out, tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr


def test_dns_with_a_dkim_key_makes_a_valid_zone_holding_the_key(advice, tmp_path):
    """The DKIM record of an RSA-2048 key is longer than one TXT string (255 octets): named-checkzone
    takes the split record, and the zone it loads holds the key that `dkim show` prints."""
    keys = tmp_path / "dkim"
    advice.admin("-o", f"dkim_key_dir={keys}", "dkim", "generate", DOMAIN, "mail2026")
    out = advice.admin("-o", f"dkim_key_dir={keys}", "dns", DOMAIN, "--address", "192.0.2.10").stdout
    m = re.search(rf'^mail2026\._domainkey\.{DOMAIN}\.\s+3600 IN TXT\s+("[^"]{{255}}")( "[^"]+")+$', out, re.M)
    assert m, out
    zone = zone_from(out, tmp_path)
    r = checkzone(zone)
    assert r.returncode == 0, r.stdout + r.stderr
    dump = subprocess.run(["named-checkzone", "-q", "-D", "-o", "-", DOMAIN, str(zone)], capture_output=True,
                          text=True, timeout=30).stdout
    [loaded] = re.findall(rf'^mail2026\._domainkey\.{DOMAIN}\.\s+\d+\s+IN\s+TXT\s+(.*)$', dump, re.M)
    shown = advice.admin("-o", f"dkim_key_dir={keys}", "dkim", "show", DOMAIN).stdout
    assert "".join(re.findall(r'"([^"]*)"', loaded)) == "".join(re.findall(r'"([^"]*)"', shown))
    assert "".join(re.findall(r'"([^"]*)"', loaded)).startswith("v=DKIM1; k=rsa; p=MIIBIjAN")


def test_dns_without_the_mx_address_is_caught_by_named_checkzone(advice, tmp_path):
    """The zone check can fail: an MX inside the zone with no address record is refused."""
    out = advice.admin("dns", DOMAIN).stdout
    assert f"; {MX} needs A/AAAA records" in out
    assert checkzone(zone_from(out, tmp_path)).returncode != 0


def test_dns_refuses_a_bad_domain(advice):
    r = advice.admin("dns", "not a domain", check=False)
    assert r.returncode == 1 and "not a domain name" in r.stderr


def test_autoconfig_names_the_configured_servers(advice, tmp_path):
    r = advice.admin("autoconfig", DOMAIN, "--output", str(tmp_path / "www"))
    path = tmp_path / "www" / "mail" / "config-v1.1.xml"
    assert path.exists(), r.stdout
    provider = ET.parse(path).getroot().find("emailProvider")
    assert provider.get("id") == DOMAIN and provider.findtext("domain") == DOMAIN
    servers = [(s.tag, s.get("type"), s.findtext("hostname"), s.findtext("port"), s.findtext("socketType"))
               for s in provider if s.tag.endswith("Server")]
    assert servers == [("incomingServer", "imap", MX, "993", "SSL"), ("incomingServer", "imap", MX, "143", "STARTTLS"),
                       ("outgoingServer", "smtp", MX, "587", "STARTTLS")], servers
    assert all(s.findtext("username") == "%EMAILADDRESS%" for s in provider if s.tag.endswith("Server"))


def test_autoconfig_writes_an_apple_profile_that_is_the_same_on_every_run(advice, tmp_path):
    advice.admin("autoconfig", DOMAIN, "--output", str(tmp_path / "www"))
    path = tmp_path / "www" / f"{DOMAIN}.mobileconfig"
    profile = plistlib.loads(path.read_bytes())
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    [mail] = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed" and mail["EmailAccountType"] == "EmailTypeIMAP"
    got = {k: mail[k] for k in ("IncomingMailServerHostName", "IncomingMailServerPortNumber", "IncomingMailServerUseSSL",
                                "OutgoingMailServerHostName", "OutgoingMailServerPortNumber", "OutgoingMailServerUseSSL",
                                "IncomingMailServerAuthentication", "OutgoingMailServerAuthentication")}
    assert got == {"IncomingMailServerHostName": MX, "IncomingMailServerPortNumber": 993, "IncomingMailServerUseSSL": True,
                   "OutgoingMailServerHostName": MX, "OutgoingMailServerPortNumber": 587, "OutgoingMailServerUseSSL": True,
                   "IncomingMailServerAuthentication": "EmailAuthPassword",
                   "OutgoingMailServerAuthentication": "EmailAuthPassword"}, got
    uuids = {profile["PayloadUUID"], mail["PayloadUUID"]}
    assert len(uuids) == 2 and all(re.fullmatch(r"[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}", u) for u in uuids)
    first = path.read_bytes()
    advice.admin("autoconfig", DOMAIN, "--output", str(tmp_path / "again"))
    assert (tmp_path / "again" / f"{DOMAIN}.mobileconfig").read_bytes() == first
    assert advice.admin("autoconfig", DOMAIN, "--format", "apple").stdout.encode() == first
    other = plistlib.loads(advice.admin("autoconfig", "other.test", "--format", "apple").stdout.encode())
    assert other["PayloadUUID"] not in uuids and other["PayloadContent"][0]["PayloadUUID"] not in uuids


def test_autoconfig_apple_profile_names_pop3_when_only_pop3_is_offered(ferry):
    ferry.set(hostname=MX, smtpd_submission_listen="", smtpd_smtps_listen="*:465", imapd_listen="",
              imapd_tls_listen="", popd_listen="*:110", popd_tls_listen="")
    [mail] = plistlib.loads(ferry.admin("autoconfig", DOMAIN, "--format", "apple").stdout.encode())["PayloadContent"]
    assert (mail["EmailAccountType"], mail["IncomingMailServerPortNumber"], mail["OutgoingMailServerPortNumber"]) == \
        ("EmailTypePOP", 110, 465), mail


def test_autoconfig_writes_an_outlook_autodiscover_response(advice, tmp_path):
    advice.set(popd_listen="*:110")
    advice.admin("autoconfig", DOMAIN, "--output", str(tmp_path / "www"))
    ns = {"r": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
          "o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    root = ET.parse(tmp_path / "www" / "autodiscover" / "autodiscover.xml").getroot()
    assert root.tag == "{%s}Autodiscover" % ns["r"]
    account = root.find("o:Response/o:Account", ns)
    assert account.findtext("o:AccountType", namespaces=ns) == "email"
    assert account.findtext("o:Action", namespaces=ns) == "settings"
    protocols = [tuple(p.findtext(f"o:{k}", namespaces=ns) for k in ("Type", "Server", "Port", "SSL", "Encryption", "SPA"))
                 for p in account.findall("o:Protocol", ns)]
    assert protocols == [("IMAP", MX, "993", "on", "SSL", "off"), ("POP3", MX, "110", "on", "TLS", "off"),
                         ("SMTP", MX, "587", "on", "TLS", "off")], protocols
    assert account.find("o:Protocol/o:LoginName", ns) is None
    printed = advice.admin("autoconfig", DOMAIN, "--format", "outlook").stdout
    assert printed == (tmp_path / "www" / "autodiscover" / "autodiscover.xml").read_text()


def test_autoconfig_rejects_an_unknown_format(advice):
    r = advice.admin("autoconfig", DOMAIN, "--format", "netscape", check=False)
    assert r.returncode == 1 and "usage" in r.stderr


# ferry-admin check: a ferry on its own loopback address, its domain served by dnsmasq.

GOOD_ZONE = {
    "mx": f"mx-host={DOMAIN},{MX},10",
    "spf": f'txt-record={DOMAIN},"v=spf1 mx -all"',
    "dmarc": f'txt-record=_dmarc.{DOMAIN},"v=DMARC1; p=none"',
}


@pytest.fixture(scope="module")
def checked():
    f = Ferry()
    addr = loopback_host()
    cert, key = make_cert(f.root, name=MX)
    f.set(hostname=MX, smtpd_listen=f"{addr}:25", popd_listen=f"{addr}:110", imapd_listen="",
          tls_cert_file=cert, tls_key_file=key)
    f.add_domain(DOMAIN)
    f.add_account(f"demo@{DOMAIN}", "demo-secret")
    f.start("mda", "qmgr", "smtpd", "popd")
    yield f, addr
    f.cleanup()


def run_check(ferry, addr, zone, *options):
    lines = "\n".join(list(zone.values()) + [f"host-record={MX},{addr}"]) + "\n"
    proc, ip, port, d = start_dnsmasq(lines)
    try:
        # The probe round trip has its own tests (test_admin_probe.py); these look at DNS, TLS and listeners.
        return ferry.admin(*options, "check", DOMAIN, "--resolver", f"{ip}:{port}", "--no-probe", check=False,
                           timeout=60)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def verdicts(out):
    return {m.group(2): m.group(1) for m in re.finditer(r"^(ok  |FAIL|skip|info) ([^:]+):", out, re.M)}


def test_check_passes_when_all_is_right(checked):
    f, addr = checked
    r = run_check(f, addr, GOOD_ZONE)
    v = verdicts(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert v[f"MX of {DOMAIN} points at {MX}"] == "ok  "
    assert v[f"SPF of {DOMAIN} lets {MX} send"] == "ok  "
    assert v[f"DMARC policy at _dmarc.{DOMAIN}"] == "ok  "
    assert v[f"TLS certificate is valid for {MX} beyond 14 days"] == "ok  "
    assert v[f"SMTP answers at {MX} ({addr}) port 25"] == "ok  "
    assert v[f"POP3 answers at {MX} ({addr}) port 110"] == "ok  "
    assert v["port 25 refuses to relay for strangers"] == "ok  "
    assert v["probe round trip"] == "skip"
    assert v[f"DKIM of {DOMAIN}"] == "info"
    assert f"fix: ferry-admin dkim generate {DOMAIN}" in r.stdout
    assert "FAIL" not in r.stdout


@pytest.mark.parametrize("change, fault, words", [
    # SPF's mx no longer covers the host when the MX is elsewhere; a:host still does.
    ({"mx": f"mx-host={DOMAIN},mx.elsewhere.test,10", "spf": f'txt-record={DOMAIN},"v=spf1 a:{MX} -all"'},
     f"MX of {DOMAIN} points at {MX}", "mx.elsewhere.test, not"),
    ({"spf": f'txt-record={DOMAIN},"v=spf1 ip4:192.0.2.0/24 -all"'}, f"SPF of {DOMAIN} lets {MX} send", "does not cover"),
    ({"spf": f'txt-record={DOMAIN},"v=spf1 -mx -all"'}, f"SPF of {DOMAIN} lets {MX} send", "does not cover"),
    ({"spf": f'txt-record={DOMAIN},"some other text"'}, f"SPF of {DOMAIN} lets {MX} send", "has no SPF record"),
    ({"dmarc": f'txt-record=_dmarc.{DOMAIN},"hello"'}, f"DMARC policy at _dmarc.{DOMAIN}", "no v=DMARC1"),
])
def test_check_names_the_dns_fault(checked, change, fault, words):
    f, addr = checked
    r = run_check(f, addr, dict(GOOD_ZONE, **change))
    assert r.returncode == 1, r.stdout
    m = re.search(rf"^FAIL {re.escape(fault)}: (.*)\n     fix: (.+)$", r.stdout, re.M)
    assert m and words in m.group(1), r.stdout
    assert r.stdout.count("FAIL") == 1, r.stdout


def test_check_names_a_certificate_for_another_name(checked, tmp_path):
    f, addr = checked
    cert, _ = make_cert(str(tmp_path), name="other.test")
    r = run_check(f, addr, GOOD_ZONE, "-o", f"tls_cert_file={cert}")
    assert r.returncode == 1
    assert re.search(rf"^FAIL TLS certificate is valid for {MX} beyond 14 days: the certificate is for .*other\.test.*, "
                     rf"not {MX}$", r.stdout, re.M), r.stdout


def test_check_names_an_unreachable_listener(checked):
    f, addr = checked
    r = run_check(f, addr, GOOD_ZONE, "-o", f"smtpd_submission_listen={addr}:587")
    assert r.returncode == 1
    assert re.search(rf"^FAIL submission answers at {MX} \({addr}\) port 587: cannot connect", r.stdout, re.M), r.stdout


def test_check_finds_an_open_relay():
    f = Ferry()
    try:
        addr = loopback_host()
        cert, key = make_cert(f.root, name=MX)
        f.set(hostname=MX, smtpd_listen=f"{addr}:25", popd_listen="", imapd_listen="", tls_cert_file=cert,
              tls_key_file=key, smtpd_relay_networks="127.0.0.0/8")
        f.add_domain(DOMAIN)
        f.start("qmgr", "smtpd")
        r = run_check(f, addr, GOOD_ZONE)
        assert r.returncode == 1
        assert re.search(r"^FAIL port 25 refuses to relay for strangers: RCPT TO a stranger: 250", r.stdout, re.M), r.stdout
    finally:
        f.cleanup()


# DKIM: the record published at <selector>._domainkey against the key ferry holds (its own key dir per test).

def dkim_key(f, keys, selector):
    """Generates an RSA key under `keys`; the quoted strings of the TXT record it prints."""
    out = f.admin("-o", f"dkim_key_dir={keys}", "dkim", "generate", DOMAIN, selector).stdout
    strings = re.findall(r'"([^"]*)"', out)
    assert len(strings) == 2 and strings[0].startswith("v=DKIM1; k=rsa; p="), out  # 2048 bits: two strings
    return strings


def dkim_zone(selector, strings):
    return dict(GOOD_ZONE, dkim=f"txt-record={selector}._domainkey.{DOMAIN}," + ",".join(f'"{s}"' for s in strings))


def test_check_finds_the_dkim_record_of_the_key_held(checked, tmp_path):
    f, addr = checked
    keys = tmp_path / "dkim"
    strings = dkim_key(f, keys, "sel1")
    r = run_check(f, addr, dkim_zone("sel1", strings), "-o", f"dkim_key_dir={keys}")
    assert r.returncode == 0, r.stdout
    assert re.search(rf"^ok   DKIM record at sel1\._domainkey\.{DOMAIN}: k=rsa, p= matches the key held$", r.stdout, re.M), r.stdout


def dkim_fault(r, keys, f):
    """The DKIM verdict's fault, and that the fix quotes the record `dkim show` prints."""
    assert r.returncode == 1, r.stdout
    m = re.search(rf"^FAIL DKIM record at sel1\._domainkey\.{DOMAIN}: (.*)\n     fix: publish the record that "
                  rf"`ferry-admin dkim show {DOMAIN}` prints:$", r.stdout, re.M)
    assert m, r.stdout
    shown = f.admin("-o", f"dkim_key_dir={keys}", "dkim", "show", DOMAIN).stdout
    for line in shown.strip().splitlines():
        assert "\n          " + line + "\n" in r.stdout, (line, r.stdout)
    assert r.stdout.count("FAIL") == 1, r.stdout
    return m.group(1)


def test_check_names_a_dkim_record_that_is_not_published(checked, tmp_path):
    f, addr = checked
    keys = tmp_path / "dkim"
    dkim_key(f, keys, "sel1")
    r = run_check(f, addr, GOOD_ZONE, "-o", f"dkim_key_dir={keys}")
    assert dkim_fault(r, keys, f) == "no record published"


def test_check_names_a_dkim_record_of_another_key(checked, tmp_path):
    f, addr = checked
    keys, other = tmp_path / "dkim", tmp_path / "other"
    dkim_key(f, keys, "sel1")
    stale = dkim_key(f, other, "sel1")  # the record of a key ferry no longer holds
    r = run_check(f, addr, dkim_zone("sel1", stale), "-o", f"dkim_key_dir={keys}")
    assert dkim_fault(r, keys, f) == "record does not match the key held: p= is another key than the one held"
