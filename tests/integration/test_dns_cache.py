"""The DNS answer cache in ferry-smtpd against a real dnsmasq: with records served at TTL 300 (as a
real zone has them) a second message from the same sender domain is checked without asking dnsmasq
again; with dnsmasq's default TTL 0 every message asks again."""
import os
import re
import shutil
import smtplib

import pytest

from ferry_harness import dns_answers, start_dnsmasq, wait_until

ZONE = 'txt-record=cached.test,"v=spf1 ip4:127.0.0.0/8 -all"\nlog-queries\n'


def dnsmasq(ttl):
    p, ip, port, d = start_dnsmasq(ZONE + f"local-ttl={ttl}\n")
    return p, ip, port, d


def queries(d, name, qtype="TXT"):
    try:
        text = open(os.path.join(d, "dnsmasq.log"), errors="replace").read()
    except FileNotFoundError:
        return 0
    return len(re.findall(rf"query\[{qtype}\] {re.escape(name)} from", text))


def flushed(ip, port, d):
    """Waits until dnsmasq's log holds a query made now: every query before it is logged too."""
    before = queries(d, "probe.test", "MX")
    assert dns_answers(ip, port, "probe.test")
    wait_until(lambda: queries(d, "probe.test", "MX") > before, 10, "dnsmasq logs the probe")


def send_two(host, ip, port, d):
    """Two messages from x@cached.test; both get spf=pass."""
    host.set(smtpd_spf_policy="record", dns_servers=f"{ip}:{port}", dns_timeout="2s", smtpd_spf_timeout="5s")
    host.start("mda", "qmgr", "smtpd")
    for i in range(2):
        token = f"tok-cache-{i}"
        with smtplib.SMTP("127.0.0.1", host.port("smtp"), local_hostname="client.test", timeout=30) as s:
            s.sendmail("x@cached.test", ["demo@example.test"], f"From: x@cached.test\r\nSubject: {token}\r\n\r\n{token}\r\n")
        def found():
            return any(token in open(p, errors="replace").read() and "spf=pass" in open(p, errors="replace").read()
                       for p in host.mail("demo@example.test"))
        wait_until(found, 15, f"message {token} delivered with spf=pass")
    flushed(ip, port, d)


@pytest.mark.parametrize("ttl,asked", [(300, 1), (0, 2)])
def test_spf_record_is_asked_again_only_when_its_ttl_says(host, ttl, asked):
    p, ip, port, d = dnsmasq(ttl)
    try:
        send_two(host, ip, port, d)
        assert queries(d, "cached.test") == asked, open(os.path.join(d, "dnsmasq.log")).read()
    finally:
        p.terminate()
        p.wait(5)
        shutil.rmtree(d, ignore_errors=True)


def test_dns_cache_size_0_turns_the_cache_off(host):
    p, ip, port, d = dnsmasq(300)
    try:
        host.set(dns_cache_size="0")
        send_two(host, ip, port, d)
        assert queries(d, "cached.test") == 2
    finally:
        p.terminate()
        p.wait(5)
        shutil.rmtree(d, ignore_errors=True)
