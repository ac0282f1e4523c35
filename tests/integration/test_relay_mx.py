"""ferry-relay end to end through DNS: dnsmasq serves MX and A records of peers on their own loopback hosts."""
import os
import shutil
import smtplib
import tempfile

import pytest

from ferry_harness import Ferry, SmtpSink, loopback_host, make_cert, start_dnsmasq, wait_port, wait_until

DEMO = "demo@example.test"


@pytest.fixture
def world(host):
    """Peers on their own hosts, a DNS server naming them, and the sending ferry pointed at it."""
    state = {"procs": [], "dirs": [], "sinks": [], "ferries": []}

    def start(zone, **keys):
        p, ip, port, d = start_dnsmasq(zone)
        server = f"{ip}:{port}"
        state["procs"].append(p)
        state["dirs"].append(d)
        host.set(dns_servers=server, dns_timeout="3s", relay_connect_timeout="2s", relay_greeting_timeout="5s",
                 relay_mail_timeout="5s", relay_rcpt_timeout="5s", relay_data_timeout="5s",
                 relay_data_block_timeout="5s", relay_data_done_timeout="10s", **keys)
        host.start("mda", "relay", "qmgr", "smtpd")
        return host

    yield state, start
    for s in state["sinks"]:
        s.stop()
    for f in state["ferries"]:
        f.cleanup()
    for p in state["procs"]:
        p.terminate()
        p.wait()
    for d in state["dirs"]:
        shutil.rmtree(d, ignore_errors=True)


def submit(f, rcpts, body):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.login(DEMO, "demo-secret")
        s.sendmail(DEMO, rcpts, body.replace("\n", "\r\n").encode())


def receiving_ferry(state, name, tls=False):
    """A second ferry hosting remote.test on its own 127.x.y.z:25 (TLS certificate for `name`)."""
    f = Ferry()
    state["ferries"].append(f)
    f.addr = loopback_host()
    f.set(hostname=name, smtpd_listen=f"{f.addr}:25")
    if tls:
        f.cert, key = make_cert(f.root, name)
        f.set(tls_cert_file=f.cert, tls_key_file=key)
    f.add_domain("remote.test")
    f.add_account("bob@remote.test", "bob-secret")
    f.start("mda", "qmgr", "smtpd")
    wait_port(f.addr)
    return f


def test_mx_lookup_to_a_second_ferry(world):
    state, start = world
    peer = receiving_ferry(state, "mx1.remote.test")
    sender = start(f"mx-host=remote.test,mx1.remote.test,10\nhost-record=mx1.remote.test,{peer.addr}\n")
    body = "Subject: found by MX\n\nhello over DNS\n"
    submit(sender, ["bob@remote.test"], body)
    [path] = peer.wait_mail("bob@remote.test", 1, timeout=30)
    assert open(path).read().endswith(body)
    sender.wait_log("relay", rf"to=<bob@remote\.test> relay=host mx1\.remote\.test\[{peer.addr}\] status=sent")


def test_a_record_fallback_to_smtp_sink_and_the_preferred_mx_down(world):
    state, start = world
    sink = SmtpSink()
    state["sinks"].append(sink)
    down = loopback_host()  # nothing listens there
    sender = start(f"host-record=plain.test,{sink.addr}\n"
                   f"mx-host=twomx.test,mx1.twomx.test,10\nmx-host=twomx.test,mx2.twomx.test,20\n"
                   f"host-record=mx1.twomx.test,{down}\nhost-record=mx2.twomx.test,{sink.addr}\n")
    submit(sender, ["a@plain.test"], "Subject: no MX\n\nby the A record\n")
    submit(sender, ["b@twomx.test"], "Subject: two MX\n\nthe second one\n")
    # smtp-sink creates each dump file before it has written it: its contents are waited for.
    wait_until(lambda: all(any(t in m for m in sink.messages()) for t in (b"by the A record", b"the second one")),
               timeout=30, what="both at the sink")
    assert len(sink.messages()) == 2
    log = sender.log("relay")
    assert f"connect to host mx1.twomx.test[{down}]" in log
    assert f"to=<b@twomx.test> relay=host mx2.twomx.test[{sink.addr}] status=sent" in log


def test_null_mx_bounces_at_once(world):
    state, start = world
    sender = start("mx-host=nullmx.test,.,0\n")
    submit(sender, ["x@nullmx.test"], "Subject: null\n\nnowhere\n")
    [path] = sender.wait_mail(DEMO, 1, timeout=30)
    report = open(path).read()
    assert "5.1.10" in report
    sender.wait_log("qmgr", r"to=<x@nullmx\.test> .*status=bounced")
    assert "status=deferred" not in sender.log("qmgr")


def test_verify_policy_trusts_the_mx_name(world):
    state, start = world
    peer = receiving_ferry(state, "mx1.remote.test", tls=True)
    policy = os.path.join(state_dir := tempfile.mkdtemp(prefix="pol-"), "tls_policy")
    state["dirs"].append(state_dir)
    with open(policy, "w") as f:
        f.write("remote.test verify\n")
    sender = start(f"mx-host=remote.test,mx1.remote.test,10\nhost-record=mx1.remote.test,{peer.addr}\n",
                   relay_tls_policy_map=policy, relay_tls_ca_file=peer.cert)
    submit(sender, ["bob@remote.test"], "Subject: verified\n\nto the right host\n")
    [path] = peer.wait_mail("bob@remote.test", 1, timeout=30)
    assert "ESMTPS" in open(path).read().split("Received: ", 2)[1]
    sender.wait_log("relay", r"connected to host mx1\.remote\.test\[.*\] with TLS")


def test_verify_policy_refuses_a_certificate_for_another_name(world):
    state, start = world
    peer = receiving_ferry(state, "other.name.test", tls=True)
    policy = os.path.join(state_dir := tempfile.mkdtemp(prefix="pol-"), "tls_policy")
    state["dirs"].append(state_dir)
    with open(policy, "w") as f:
        f.write("remote.test verify\n")
    sender = start(f"mx-host=remote.test,mx1.remote.test,10\nhost-record=mx1.remote.test,{peer.addr}\n",
                   relay_tls_policy_map=policy, relay_tls_ca_file=peer.cert)
    submit(sender, ["bob@remote.test"], "Subject: impostor\n\nnever to it\n")
    sender.wait_log("qmgr", r"to=<bob@remote\.test> .*status=deferred .*4\.7\.5", timeout=30)
    assert peer.mail("bob@remote.test") == []
