"""ferry-qmgr's scheduling to remote destinations: transactions in parallel, per-domain limits, dead domains held back, SIGKILL."""
import glob
import os
import re
import smtplib
import threading

from ferry_harness import ScriptedPeer, SmtpSink, loopback_host, transport_map, smtp_dialogue, wait_until

DEMO = "demo@example.test"


def submit_many(f, items):
    """items: (token, [recipients]); one SMTP session, one message per item, the token in the Subject."""
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=60) as s:
        s.login(DEMO, "demo-secret")
        for tok, rcpts in items:
            s.sendmail(DEMO, rcpts, f"Subject: {tok}\r\nMessage-ID: <{tok}@example.test>\r\n\r\nbody {tok}\r\n")


def tokens(messages):
    out = []
    for m in messages:
        hit = re.search(rb"^Subject: (\S+)", m, re.M)
        if hit:
            out.append(hit.group(1).decode())
    return out


def closed_port():
    """A loopback address and port where nothing listens: connections are refused."""
    addr = loopback_host()
    return f"{addr}:25"


def holding_peer():
    """A peer that keeps each session after the final dot until released; counts sessions at once."""
    state = {"now": 0, "max": 0, "done": 0}
    lock = threading.Lock()
    release = threading.Semaphore(0)

    def hold(n):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        release.acquire()
        with lock:
            state["now"] -= 1
            state["done"] += 1
        return "250 2.0.0 Ok: queued"
    handler = smtp_dialogue(name="hold.test", ehlo=("8BITMIME",), rcpt_reply=lambda n: "250 2.0.0 Ok", data_reply=hold)
    return handler, state, lock, release


def test_destination_concurrency_is_capped(host, outside):
    handler, state, lock, release = holding_peer()
    peer = outside(ScriptedPeer, handler)
    transport_map(host, {"hold.test": f"{peer.addr}:25"})
    host.set(qmgr_destination_concurrency="2", qmgr_max_deliveries="20")
    host.start("mda", "relay", "qmgr", "smtpd")
    n = 6
    submit_many(host, [(f"cap{i}", [f"u{i}@hold.test"]) for i in range(n)])
    try:
        for i in range(n):
            # Each round: as many sessions held as the cap allows (fewer at the end), then one goes.
            wait_until(lambda: state["now"] >= min(2, n - i), timeout=30, what=f"{min(2, n - i)} sessions held")
            release.release()
            wait_until(lambda: state["done"] > i, timeout=30, what="a session released")
    finally:
        for _ in range(n):
            release.release()
    for i in range(n):
        host.wait_log("qmgr", rf"to=<u{i}@hold\.test> .*relay={re.escape(peer.addr)}\[{re.escape(peer.addr)}\] status=sent",
                      timeout=30)
    assert state["max"] == 2, state


def test_rate_delay_spaces_the_starts_to_one_domain(host, outside):
    sink = outside(SmtpSink)
    transport_map(host, {"slow.test": f"{sink.addr}:25"})
    host.set(qmgr_destination_rate_delay="2s")
    host.start("mda", "relay", "qmgr", "smtpd")
    submit_many(host, [(f"rate{i}", [f"u{i}@slow.test"]) for i in range(3)])
    wait_until(lambda: len(sink.messages()) == 3, timeout=60, what="3 messages at the sink")
    times = sorted(os.path.getmtime(p) for p in glob.glob(os.path.join(sink.dir, "*")))
    # A lower bound only: the pause between two starts is at least the delay (less a margin for the transfer).
    assert all(b - a >= 1.5 for a, b in zip(times, times[1:])), times


def test_dead_destination_does_not_delay_a_healthy_one(host, outside):
    sink = outside(SmtpSink)
    transport_map(host, {"dead.test": closed_port(), "alive.test": f"{sink.addr}:25"})
    host.set(qmgr_retry_schedule="10m")
    host.start("mda", "relay", "qmgr", "smtpd")
    submit_many(host, [(f"dead{i}", [f"u{i}@dead.test"]) for i in range(200)])
    submit_many(host, [("healthy", ["bob@alive.test"])])
    wait_until(lambda: "healthy" in tokens(sink.messages()), timeout=60, what="the healthy message at the sink")
    # The dead domain is held back: logged once, and its waiting recipients were not all tried.
    host.wait_log("qmgr", r"destination dead\.test is held back for \d+s after failures", timeout=30)
    log = host.log("qmgr")
    assert len(re.findall(r"destination dead\.test is held back", log)) == 1
    tried = len(re.findall(r"to=<u\d+@dead\.test> .*status=deferred", log))
    assert 1 <= tried <= 20, tried
    assert len(host.spool_ids("queue")) == 200


def test_recipients_in_two_domains_and_local_get_one_delivery_each(host, outside):
    a, b = outside(SmtpSink), outside(SmtpSink)
    transport_map(host, {"a.test": f"{a.addr}:25", "b.test": f"{b.addr}:25"})
    host.start("mda", "relay", "qmgr", "smtpd")
    submit_many(host, [("three", ["x@a.test", "y@b.test", DEMO])])
    qid = host.wait_log("qmgr", r"(\w+): removed$", timeout=30).group(1)
    assert tokens(a.messages()) == ["three"]
    assert tokens(b.messages()) == ["three"]
    assert len(host.mail(DEMO)) == 1
    log = host.log("qmgr")
    assert re.search(rf"{qid}: to=<{DEMO}> .*relay=local status=sent", log)
    assert re.search(rf"{qid}: to=<x@a\.test> .*relay={re.escape(a.addr)}\[{re.escape(a.addr)}\] status=sent", log)
    assert re.search(rf"{qid}: to=<y@b\.test> .*relay={re.escape(b.addr)}\[{re.escape(b.addr)}\] status=sent", log)


def test_sigkill_of_qmgr_with_1000_remote_messages_loses_none(host, outside):
    sinks = [outside(SmtpSink) for _ in range(4)]
    transport_map(host, {f"d{i}.test": f"{s.addr}:25" for i, s in enumerate(sinks)})
    host.set(qmgr_max_deliveries="20")
    host.start("mda", "relay", "smtpd")
    total = 1000
    submit_many(host, [(f"tok{i:04d}", [f"u{i}@d{i % 4}.test"]) for i in range(total)])
    assert len(host.spool_ids("queue")) == total

    def arrived():
        return [t for s in sinks for t in tokens(s.messages())]
    host.start("qmgr")
    wait_until(lambda: len(arrived()) >= 100, timeout=120, what="100 messages at the sinks")
    host.kill("qmgr")
    assert len(set(arrived())) < total, "the kill came after every message had left"
    host.start("qmgr")
    wait_until(lambda: len(set(arrived())) >= total, timeout=300, what="all messages at the sinks")
    got = arrived()
    assert set(got) == {f"tok{i:04d}" for i in range(total)}
    # Only transfers in flight at the kill (at most qmgr_max_deliveries, one recipient each) can come twice.
    assert len(got) - total <= 20, len(got) - total
    wait_until(lambda: host.spool_ids("queue") == [], timeout=60, what="queue empty")
