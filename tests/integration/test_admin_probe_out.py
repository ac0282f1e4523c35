"""ferry-admin check's probe out and back against real daemons: handed to ferry-relay, sent to the
domain's MX as dnsmasq names it, and back in through port 25 to the mailbox, each hop of its
Received: trail timed; a refusal by the MX, or a bounce that comes back later, quoted with its fix."""
import re
import shutil

import pytest

from ferry_harness import Ferry, loopback_host, make_cert, start_dnsmasq, wait_port

DOMAIN = "out.check.test"
MX = "mx.out.check.test"


@pytest.fixture
def world():
    """dnsmasq serving the domain, and the ferries made in the test (each on its own 127.x address)."""
    state = {"ferries": [], "dns": None}

    def serve(mx_host, mx_addr, host_addr, extra=""):
        # ferry-relay sends from 127.0.0.1 (the loopback's own address), hence its ip4: term.
        mx = f"mx-host={DOMAIN},.,0\n" if mx_host == "." else f"mx-host={DOMAIN},{mx_host},10\nhost-record={mx_host},{mx_addr}\n"
        zone = (f"{mx}{extra}"
                f'txt-record={DOMAIN},"v=spf1 mx ip4:127.0.0.1 -all"\ntxt-record=_dmarc.{DOMAIN},"v=DMARC1; p=none"\n')
        if mx_host != MX:
            zone += f"host-record={MX},{host_addr}\n"
        state["dns"] = start_dnsmasq(zone)
        _, ip, port, _ = state["dns"]
        return f"{ip}:{port}"

    def ferry(name, addr, **keys):
        f = Ferry()
        state["ferries"].append(f)
        cert, key = make_cert(f.root, name=name)
        f.set(hostname=name, smtpd_listen=f"{addr}:25", popd_listen="", imapd_listen="", tls_cert_file=cert,
              tls_key_file=key, **keys)
        return f

    yield serve, ferry
    for f in state["ferries"]:
        f.cleanup()
    if state["dns"]:
        p, _, _, d = state["dns"]
        p.terminate()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)


def hosting(serve, ferry, mx_host=MX, mx_addr=None, dkim=False):
    """The ferry under check, hosting the domain on its own address; the MX is itself unless named.
    With `dkim`, it holds a DKIM key whose record is published, and ferry-smtpd verifies signatures."""
    addr = loopback_host()
    f = ferry(MX, addr, dns_timeout="3s", smtpd_spf_policy="record", smtpd_spf_timeout="5s",
              relay_connect_timeout="3s", relay_greeting_timeout="5s", relay_mail_timeout="5s",
              relay_rcpt_timeout="5s", relay_data_timeout="5s", relay_data_block_timeout="5s",
              relay_data_done_timeout="10s", smtpd_dkim_verify="yes" if dkim else "no")
    extra = ""
    if dkim:
        strings = re.findall(r'"([^"]*)"', f.admin("dkim", "generate", DOMAIN, "probe1").stdout)
        extra = f"txt-record=probe1._domainkey.{DOMAIN}," + ",".join(f'"{x}"' for x in strings) + "\n"
    resolver = serve(mx_host, mx_addr or addr, addr, extra)
    f.set(dns_servers=resolver)
    f.add_domain(DOMAIN)
    f.add_account(f"demo@{DOMAIN}", "demo-secret")
    f.admin("alias", "add", f"postmaster@{DOMAIN}", f"demo@{DOMAIN}")
    f.start("mda", "relay", "qmgr", "smtpd")
    f.resolver = resolver
    f.addr = addr
    return f


def check(f, *options):
    return f.admin("check", DOMAIN, "--resolver", f.resolver, *options, check=False, timeout=120)


def verdict(out, what):
    m = re.search(rf"^(ok  |FAIL|skip|info) {re.escape(what)}: (.*)$", out, re.M)
    assert m, f"no verdict on {what!r}:\n{out}"
    return m.group(1).strip(), m.group(2)


def test_both_probes_by_default_and_the_out_one_comes_back_hop_by_hop(world):
    serve, ferry = world
    f = hosting(serve, ferry)
    r = check(f)
    assert r.returncode == 0, r.stdout + r.stderr
    # The probe in, as before, and the probe out: ferry-relay found the MX in DNS and the MX took it.
    assert verdict(r.stdout, f"probe delivered to the mailbox of postmaster@{DOMAIN}")[0] == "ok"
    state, detail = verdict(r.stdout, f"probe out sent through ferry-relay to the MX of {DOMAIN}")
    assert state == "ok" and detail.startswith("250 ") and f"{MX}[{f.addr}]" in detail, detail
    m = re.search(rf"^ok   probe out came back to the mailbox of postmaster@{re.escape(DOMAIN)}: in \d+\.\d s, (\S+)\n"
                  r"((?:     .*\n)+)", r.stdout, re.M)
    assert m, r.stdout
    notes = m.group(2).splitlines()
    hops = [n.strip() for n in notes if n.strip().startswith("hop ")]
    # The top hop is this host's ferry-smtpd taking it from ferry-relay over TLS, timed from the probe's Date:.
    assert hops and re.fullmatch(rf"hop {len(hops)}: by {re.escape(MX)} \(from {re.escape(MX)}, with ESMTPS\), \+\d+ s",
                                 hops[-1]), notes
    assert any(re.fullmatch(rf"Authentication-Results: {re.escape(MX)}; spf=pass.*", n.strip()) for n in notes), notes
    # The file named is the probe out, and it went through ferry-relay (its own Received: field).
    text = open(m.group(1)).read()
    assert re.search(r"^Subject: ferry-admin check probe out [0-9a-f]{16}$", text, re.M)
    assert len(f.mail(f"demo@{DOMAIN}")) == 2  # the probe in and the probe out
    f.wait_log("relay", rf"to=<postmaster@{re.escape(DOMAIN)}> relay=host {re.escape(MX)}\[{re.escape(f.addr)}\] status=sent")


def test_the_probe_out_is_signed_with_the_key_whose_record_check_found(world):
    serve, ferry = world
    f = hosting(serve, ferry, dkim=True)
    r = check(f, "--probe-path", "out")
    assert r.returncode == 0, r.stdout + r.stderr
    assert verdict(r.stdout, f"DKIM record at probe1._domainkey.{DOMAIN}") == ("ok", "k=rsa, p= matches the key held")
    m = re.search(rf"^     Authentication-Results: {re.escape(MX)}; (.*)$", r.stdout, re.M)
    assert m and re.search(rf"\bdkim=pass\b.*header\.d={re.escape(DOMAIN)}", m.group(1)), r.stdout
    [probe] = f.mail(f"demo@{DOMAIN}")
    signature = re.search(r"^DKIM-Signature:(.*(?:\n[ \t].*)*)", open(probe).read(), re.M)
    assert signature and re.search(r"\bs=probe1;", signature.group(1)) and f"d={DOMAIN};" in signature.group(1)


def test_a_recipient_the_mx_refuses_is_quoted(world):
    serve, ferry = world
    f = hosting(serve, ferry)
    r = check(f, "--probe-path", "out", "--probe", f"nobody@{DOMAIN}")
    assert r.returncode == 1, r.stdout
    state, detail = verdict(r.stdout, f"probe out sent through ferry-relay to the MX of {DOMAIN}")
    assert state == "FAIL" and re.match(rf"bounced: 55\d 5\.1\.1 .*{re.escape(MX)}\[{re.escape(f.addr)}\].* said: 550 5\.1\.1 ",
                                        detail), r.stdout
    assert re.search(rf"^     fix: give nobody@{re.escape(DOMAIN)} a mailbox at the MX", r.stdout, re.M), r.stdout
    assert "probe round trip" not in r.stdout and "probe delivered" not in r.stdout  # --probe-path out: no probe in


def test_a_bounce_that_comes_back_later_is_quoted(world):
    """The MX takes the probe, then its delivery fails (the mailbox is full): the DSN that comes back
    to postmaster is read, and its Diagnostic-Code is the verdict."""
    serve, ferry = world
    f = hosting(serve, ferry)
    f.add_account(f"full@{DOMAIN}", "full-secret")
    f.admin("quota", "set", f"full@{DOMAIN}", "10", "10")
    r = check(f, "--probe-path", "out", "--probe", f"full@{DOMAIN}")
    assert r.returncode == 1, r.stdout
    assert verdict(r.stdout, f"probe out sent through ferry-relay to the MX of {DOMAIN}")[0] == "ok"
    state, detail = verdict(r.stdout, f"probe out came back to the mailbox of full@{DOMAIN}")
    assert state == "FAIL", r.stdout
    [dsn] = f.mail(f"demo@{DOMAIN}")
    diagnostic = re.search(r"^Diagnostic-Code: smtp; (.*)$", open(dsn).read(), re.M).group(1)
    assert detail.startswith(f"it bounced after the MX took it: {diagnostic}"), (detail, diagnostic)
    assert "5.2.2" in diagnostic
    assert re.search(rf"^     fix: the mailbox of full@{re.escape(DOMAIN)} is full", r.stdout, re.M), r.stdout


def test_an_mx_that_is_another_server_refusing_the_domain_is_quoted(world):
    """dnsmasq points the MX at a second ferry that does not host the domain: it refuses to relay."""
    serve, ferry = world
    other_addr = loopback_host()
    f = hosting(serve, ferry, mx_host="mx.elsewhere.test", mx_addr=other_addr)
    other = ferry("mx.elsewhere.test", other_addr)
    other.add_domain("elsewhere.test")
    other.start("qmgr", "smtpd")
    wait_port(other_addr)
    r = check(f, "--probe-path", "out")
    assert r.returncode == 1, r.stdout
    state, detail = verdict(r.stdout, f"probe out sent through ferry-relay to the MX of {DOMAIN}")
    assert state == "FAIL" and re.search(rf"mx\.elsewhere\.test\[{re.escape(other_addr)}\].* said: 5\d\d 5\.7\.1 ", detail), r.stdout
    assert re.search(rf"^     fix: the MX refuses {re.escape(DOMAIN)} or this host: point the MX at {re.escape(MX)}", r.stdout, re.M)
    assert not f.mail(f"demo@{DOMAIN}")


def test_a_null_mx_is_quoted(world):
    serve, ferry = world
    f = hosting(serve, ferry, mx_host=".")
    r = check(f, "--probe-path", "out")
    assert r.returncode == 1, r.stdout
    state, detail = verdict(r.stdout, f"probe out sent through ferry-relay to the MX of {DOMAIN}")
    assert state == "FAIL" and detail.startswith("bounced: 556 5.1.10 ") and "null MX" in detail, r.stdout
    assert re.search(rf'^     fix: {re.escape(DOMAIN)} publishes a null MX: publish "{re.escape(DOMAIN)}\. IN MX 10 {re.escape(MX)}\."',
                     r.stdout, re.M), r.stdout


def test_probe_out_without_ferry_relay_is_named(world):
    serve, ferry = world
    f = hosting(serve, ferry)
    f.stop_one("relay")
    r = check(f)  # the default is the probe in alone, and a note why there is no probe out
    assert verdict(r.stdout, "probe out")[0] == "skip", r.stdout
    assert r.returncode == 0, r.stdout
    r = check(f, "--probe-path", "out")
    assert r.returncode == 1
    state, detail = verdict(r.stdout, f"probe out sent through ferry-relay to the MX of {DOMAIN}")
    assert state == "FAIL" and detail.startswith("ferry-relay does not listen at "), r.stdout
