"""ferry-admin check's probe round trip against real daemons: a message in through port 25 as another
server sends it (STARTTLS, from the host's own address), found in the Maildir with the Received: and
Authentication-Results: fields a receiver sees; an unknown user refused at RCPT; each fault named."""
import glob
import re
import shutil

import pytest

from ferry_harness import Ferry, loopback_host, make_cert, start_dnsmasq

DOMAIN = "probe.check.test"
MX = "mx.probe.check.test"


def zone(addr, spf="v=spf1 mx -all", host_record=True):
    lines = [f"mx-host={DOMAIN},{MX},10", f'txt-record={DOMAIN},"{spf}"', f'txt-record=_dmarc.{DOMAIN},"v=DMARC1; p=none"']
    if host_record:
        lines.append(f"host-record={MX},{addr}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def mailhost(request):
    """A ferry on its own 127.x address whose ferry-smtpd checks SPF against a dnsmasq serving the domain;
    the test's parameters (indirect) change the zone."""
    options = getattr(request, "param", {})
    addr = loopback_host()
    dns, ip, port, d = start_dnsmasq(zone(addr, **options))
    f = Ferry()
    cert, key = make_cert(f.root, name=MX)
    f.set(hostname=MX, smtpd_listen=f"{addr}:25", popd_listen="", imapd_listen="", tls_cert_file=cert,
          tls_key_file=key, dns_servers=f"{ip}:{port}", smtpd_spf_policy="record", smtpd_spf_timeout="5s")
    f.add_domain(DOMAIN)
    f.add_account(f"demo@{DOMAIN}", "demo-secret")
    f.admin("alias", "add", f"postmaster@{DOMAIN}", f"demo@{DOMAIN}")
    f.start("mda", "qmgr", "smtpd")
    f.resolver = f"{ip}:{port}"
    yield f, addr
    f.cleanup()
    dns.terminate()
    dns.wait()
    shutil.rmtree(d, ignore_errors=True)


def check(f, *options):
    return f.admin("check", DOMAIN, "--resolver", f.resolver, *options, check=False, timeout=120)


def verdict(out, what):
    m = re.search(rf"^(ok  |FAIL|skip) {re.escape(what)}: (.*)$", out, re.M)
    assert m, f"no verdict on {what!r}:\n{out}"
    return m.group(1).strip(), m.group(2)


def test_the_probe_goes_in_over_tls_and_arrives_with_what_a_receiver_sees(mailhost):
    f, addr = mailhost
    r = check(f)
    assert r.returncode == 0, r.stdout + r.stderr
    assert verdict(r.stdout, "probe: STARTTLS at port 25")[0] == "ok"
    assert verdict(r.stdout, "mail to an unknown user is refused at RCPT")[1].startswith("RCPT TO:<no-such-user-")
    assert "550" in verdict(r.stdout, "mail to an unknown user is refused at RCPT")[1]
    state, detail = verdict(r.stdout, f"probe delivered to the mailbox of postmaster@{DOMAIN}")
    assert state == "ok" and re.match(r"queue id \S+, in \d+\.\d s, ", detail), detail
    assert verdict(r.stdout, f"probe's Received: field is by {MX}")[0] == "ok"
    assert verdict(r.stdout, "probe's Received: field records TLS")[0] == "ok"
    assert verdict(r.stdout, f"probe's SPF result at {MX}") == ("ok", "spf=pass")
    # The probe really is in the mailbox the alias leads to, sent from the host's own address.
    files = f.mail(f"demo@{DOMAIN}")
    assert len(files) == 1
    text = open(files[0]).read()
    assert re.search(r"^X-Ferry-Probe: [0-9a-f]{16}$", text, re.M)
    assert re.search(rf"^Received: from {re.escape(MX)} \(unknown \[{re.escape(addr)}\]\)$", text, re.M), text
    assert "FAIL" not in r.stdout


@pytest.mark.parametrize("mailhost", [{"spf": "v=spf1 ip4:192.0.2.0/24 -all"}], indirect=True)
def test_the_probe_shows_the_spf_fail_a_receiver_would_see(mailhost):
    f, _ = mailhost
    r = check(f)
    assert r.returncode == 1
    state, detail = verdict(r.stdout, f"probe's SPF result at {MX}")
    assert state == "FAIL" and detail.startswith("spf=fail"), r.stdout
    assert re.search(r"^     fix: let this host send for the domain", r.stdout, re.M)
    assert verdict(r.stdout, f"probe delivered to the mailbox of postmaster@{DOMAIN}")[0] == "ok"


def test_a_catch_all_that_accepts_every_user_is_named(mailhost):
    f, _ = mailhost
    f.admin("alias", "add", f"@{DOMAIN}", f"demo@{DOMAIN}")
    r = check(f)
    assert r.returncode == 1
    state, detail = verdict(r.stdout, "mail to an unknown user is refused at RCPT")
    assert state == "FAIL" and "was accepted: 250" in detail, r.stdout
    assert "catch-all" in r.stdout
    assert r.stdout.count("FAIL") == 1, r.stdout


def test_a_probe_address_without_a_mailbox_is_named(mailhost):
    f, _ = mailhost
    r = check(f, "--probe", f"nobody@{DOMAIN}")
    assert r.returncode == 1
    state, detail = verdict(r.stdout, f"probe accepted for nobody@{DOMAIN}")
    assert state == "FAIL" and detail.startswith("RCPT TO: 550"), r.stdout
    assert not glob.glob(f.maildir(f"nobody@{DOMAIN}") + "/new/*")


def test_a_probe_that_never_arrives_is_named_with_its_queue_id(mailhost):
    f, _ = mailhost
    f.stop_one("mda")
    r = check(f, "--probe-wait", "2")
    assert r.returncode == 1
    state, detail = verdict(r.stdout, f"probe delivered to the mailbox of postmaster@{DOMAIN}")
    assert state == "FAIL" and re.match(r"queue id \S+ is not there after 2 s", detail), r.stdout
    qid = detail.split()[2]
    assert re.search(rf"^     fix: follow it in the log \(grep {re.escape(qid)}\)", r.stdout, re.M)


@pytest.mark.parametrize("mailhost", [{"host_record": False}], indirect=True)
def test_via_sends_the_probe_where_dns_does_not_point(mailhost):
    f, addr = mailhost
    r = check(f)
    assert verdict(r.stdout, f"probe round trip to postmaster@{DOMAIN}")[0] == "skip"
    r = check(f, "--via", f"{addr}:25")
    assert verdict(r.stdout, f"probe delivered to the mailbox of postmaster@{DOMAIN}")[0] == "ok", r.stdout
    assert len(f.mail(f"demo@{DOMAIN}")) == 1


def test_no_probe_leaves_it_out(mailhost):
    f, _ = mailhost
    r = check(f, "--no-probe")
    assert r.returncode == 0, r.stdout
    assert verdict(r.stdout, "probe round trip")[0] == "skip"
    assert not f.mail(f"demo@{DOMAIN}")
