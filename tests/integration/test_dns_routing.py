"""ferry-relay's routing (mta/relay/routing.cpp) through tests/tools/route-query against a real dnsmasq:
MX order, the A/AAAA fallback, null MX, NXDOMAIN, CNAMEs, IPv6, relayhost, and a server that never answers."""
import os
import random
import socket
import subprocess
import tempfile
import time

import pytest

from ferry_harness import binary, dnsmasq

ZONE = """
mx-host=remote.test,mx2.remote.test,20
mx-host=remote.test,mx1.remote.test,10
host-record=mx1.remote.test,127.0.0.61
host-record=mx2.remote.test,127.0.0.62
host-record=fallback.test,127.0.0.63
mx-host=nullmx.test,.,0
mx-host=v6.test,mx.v6.test,10
host-record=mx.v6.test,127.0.0.64,::1
host-record=only6.test,::1
mx-host=cnamemx.test,alias.cnamemx.test,10
cname=alias.cnamemx.test,host.cnamemx.test
host-record=host.cnamemx.test,127.0.0.65
cname=alias.test,fallback.test
mx-host=nohost.test,missing.nohost.test,10
mx-host=ipmx.test,127.0.0.66,10
mx-host=mixedmx.test,127.0.0.66,10
mx-host=mixedmx.test,mx1.remote.test,20
"""


@pytest.fixture(scope="module")
def dns():
    """dnsmasq with the zone above on a random 127.0.0.x and a free port: (ip, port)."""
    with dnsmasq(ZONE) as server:
        yield server


def route(conf_text, *domains, timeout=30):
    """Runs route-query with a ferry.conf of `conf_text`; {domain: {"kind", "via", "targets", "reply"}}."""
    with tempfile.TemporaryDirectory(prefix="ferry-route-") as d:
        conf = os.path.join(d, "ferry.conf")
        with open(conf, "w") as f:
            f.write(conf_text.replace("@DIR@", d))
        with open(os.path.join(d, "transport"), "w") as f:
            f.write("# test peers\nmapped.test  [127.0.0.70]:2525\n.sub.test  remote.test:2526\n")
        r = subprocess.run([binary("route-query"), "-c", conf, *domains], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    out, cur = {}, None
    for line in r.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word == "domain":
            cur = out[rest] = {"targets": [], "reply": ""}
        elif line.startswith("kind="):
            kind, via = line.split()
            cur["kind"], cur["via"] = kind[5:], via == "via_relayhost=yes"
        elif word == "target":
            host, addr, port = rest.split()
            cur["targets"].append((host, addr, int(port)))
        elif word == "reply":
            cur["reply"] = rest
    assert set(out) == set(domains), r.stdout
    return out


def conf_for(dns, extra=""):
    return f"dns_servers = {dns[0]}:{dns[1]}\ndns_timeout = 5s\n{extra}"


def test_mx_hosts_in_preference_order(dns):
    r = route(conf_for(dns), "remote.test")["remote.test"]
    assert r["kind"] == "ok", r
    assert r["targets"] == [("mx1.remote.test", "127.0.0.61", 25), ("mx2.remote.test", "127.0.0.62", 25)]
    assert not r["via"]


def test_no_mx_falls_back_to_the_domains_address(dns):
    r = route(conf_for(dns), "fallback.test")["fallback.test"]
    assert r["targets"] == [("fallback.test", "127.0.0.63", 25)], r


def test_null_mx_nxdomain_and_hostless_mx_are_permanent(dns):
    r = route(conf_for(dns), "nullmx.test", "gone.test", "nohost.test")
    assert r["nullmx.test"]["kind"] == "permanent"
    assert r["nullmx.test"]["reply"].startswith("556 5.1.10 Domain nullmx.test does not accept mail (null MX"), r
    assert r["gone.test"]["kind"] == "permanent"
    assert r["gone.test"]["reply"].startswith("550 5.1.2 Domain gone.test not found"), r
    assert "NXDOMAIN" in r["gone.test"]["reply"]
    assert r["nohost.test"]["kind"] == "permanent"
    assert r["nohost.test"]["reply"].startswith("550 5.4.4 Domain nohost.test: no MX host has an address"), r
    assert "missing.nohost.test" in r["nohost.test"]["reply"]


def test_cnames_are_followed(dns):
    r = route(conf_for(dns), "cnamemx.test", "alias.test")
    assert r["cnamemx.test"]["targets"] == [("alias.cnamemx.test", "127.0.0.65", 25)], r
    assert r["alias.test"]["targets"] == [("alias.test", "127.0.0.63", 25)], r


def test_an_mx_naming_an_ip_address_is_skipped(dns):
    r = route(conf_for(dns), "ipmx.test", "mixedmx.test")
    assert r["mixedmx.test"]["targets"] == [("mx1.remote.test", "127.0.0.61", 25)], r
    assert r["ipmx.test"]["kind"] == "temporary", r
    assert r["ipmx.test"]["reply"].startswith("451 4.4.3 Domain ipmx.test: DNS lookup failed temporarily"), r
    assert "IP address" in r["ipmx.test"]["reply"]


def test_ipv6_addresses_are_targets(dns):
    r = route(conf_for(dns), "v6.test", "only6.test")
    assert r["v6.test"]["targets"] == [("mx.v6.test", "127.0.0.64", 25), ("mx.v6.test", "::1", 25)], r
    assert r["only6.test"]["targets"] == [("only6.test", "::1", 25)], r


def test_address_literal_transport_map_and_relayhost(dns):
    extra = "relay_transport_map = @DIR@/transport\nrelayhost = [mx2.remote.test]:2587\n"
    r = route(conf_for(dns, extra), "[127.0.0.61]", "mapped.test", "a.sub.test", "fallback.test")
    assert r["[127.0.0.61]"]["targets"] == [("127.0.0.61", "127.0.0.61", 25)], r
    assert r["mapped.test"]["targets"] == [("127.0.0.70", "127.0.0.70", 2525)], r
    assert r["a.sub.test"]["targets"] == [("mx1.remote.test", "127.0.0.61", 2526), ("mx2.remote.test", "127.0.0.62", 2526)], r
    assert not r["a.sub.test"]["via"]
    assert r["fallback.test"]["targets"] == [("mx2.remote.test", "127.0.0.62", 2587)], r
    assert r["fallback.test"]["via"]


def test_a_bad_transport_map_stops_start_up_naming_file_and_line(dns):
    with tempfile.TemporaryDirectory(prefix="ferry-route-") as d:
        with open(os.path.join(d, "transport"), "w") as f:
            f.write("ok.test [127.0.0.70]\nbroken.test [127.0.0.71]:port\n")
        with open(os.path.join(d, "ferry.conf"), "w") as f:
            f.write(conf_for(dns, f"relay_transport_map = {d}/transport\n"))
        r = subprocess.run([binary("route-query"), "-c", os.path.join(d, "ferry.conf"), "x.test"],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 78
    assert f"{d}/transport:2: bad next hop" in r.stderr


def test_a_dns_server_that_never_answers_is_temporary_within_dns_timeout():
    ip = f"127.0.0.{random.randint(100, 250)}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((ip, 0))
        conf = f"dns_servers = {ip}:{silent.getsockname()[1]}\ndns_timeout = 2s\n"
        start = time.monotonic()
        r = route(conf, "remote.test")["remote.test"]
        took = time.monotonic() - start
    assert r["kind"] == "temporary", r
    assert r["reply"] == ("451 4.4.3 Domain remote.test: DNS lookup failed temporarily "
                          "(MX lookup: no answer from the DNS servers within 2s)"), r
    assert 1.5 < took < 5, took
