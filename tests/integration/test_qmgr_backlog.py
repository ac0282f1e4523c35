"""ferry-qmgr without needless syncs (no state file for a first attempt, unsynced removal) and with a large backlog: crash windows, dead destinations, ferry-relay killed mid-transfer."""
import os
import re
import signal
import smtplib
import threading
import time
import uuid

import pytest

from ferry_harness import ScriptedPeer, SmtpSink, loopback_host, transport_map, wait_until

DEMO = "demo@example.test"
SENDER = "sender@example.test"


def send(f, rcpts, tok):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.login(SENDER, "sender-secret")  # relaying needs a login
        s.sendmail(SENDER, rcpts, f"From: {SENDER}\r\nSubject: {tok}\r\n\r\nbody {tok}\r\n")


def copies(f, tok):
    return [p for p in f.mail(DEMO) if f"body {tok}\n".encode() in open(p, "rb").read()]


def write_queue_files(f, rcpt, n):
    """n committed queue files for `rcpt`, written as smtpd would leave them (16 hex digit ids, time-ordered)."""
    spool = f.keys["spool_dir"]
    os.makedirs(os.path.join(spool, "queue"), exist_ok=True)
    base = int(time.time() * 1e6) - 10 * n
    now = int(time.time())
    ids = []
    for i in range(n):
        qid = f"{base + i:013X}{i % 4096:03X}"
        data = f"Subject: backlog {i}\n\nbody {i}\n"
        text = (f"ferry-queue 1\nid {qid}\narrival {now}\nsender {SENDER}\nclient 127.0.0.1\nhelo test\n"
                f"rcpt {rcpt}\ndata\n{data}\nend {len(data.encode())}\n")
        with open(os.path.join(spool, "queue", qid), "w") as fp:
            fp.write(text)
        ids.append(qid)
    return ids


@pytest.fixture
def twohost(host):
    host.add_account(SENDER, "sender-secret")
    return host


def test_first_attempt_saves_no_state_and_a_kill_after_the_delivery_leaves_one_copy(twohost):
    # No state file is written before the first hand-off: the kill after ferry-mda's answer leaves the
    # recipient queued, and the retry meets ferry-mda's delivery record.
    f = twohost
    f.set(**{"qmgr.test_pause_at": "qmgr-after-handoff"})
    f.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(f, [DEMO], tok)
    qid = f.wait_log("qmgr", r"(\w+): paused at qmgr-after-handoff").group(1)
    assert f.spool_ids("state") == []
    assert len(copies(f, tok)) == 1
    f.kill("qmgr")
    f.set(**{"qmgr.test_pause_at": ""})
    f.start("qmgr")
    f.wait_log("qmgr", rf"{qid}: removed$", timeout=30)
    f.wait_log("mda", rf"{qid}: .*already delivered")
    assert len(copies(f, tok)) == 1
    assert f.spool_ids("queue") == [] and f.spool_ids("state") == []


def test_a_removal_lost_in_a_crash_delivers_no_second_copy(twohost):
    # The removal of a message ferry-mda took whole is not fsync'd: should the crash bring the queue
    # file back (its unlink not on disk), the next qmgr delivers it again and gets "already delivered".
    f = twohost
    f.set(**{"qmgr.test_pause_at": "qmgr-before-handoff"})
    f.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(f, [DEMO], tok)
    qid = f.wait_log("qmgr", r"(\w+): paused at qmgr-before-handoff").group(1)
    path = os.path.join(f.keys["spool_dir"], "queue", qid)
    kept = open(path, "rb").read()
    os.kill(f.pid("qmgr"), signal.SIGCONT)
    f.wait_log("qmgr", rf"{qid}: removed$", timeout=30)
    assert len(copies(f, tok)) == 1
    f.kill("qmgr")
    with open(path, "wb") as fp:  # what the disk may hold after a power loss
        fp.write(kept)
    f.set(**{"qmgr.test_pause_at": ""})
    f.start("qmgr")
    wait_until(lambda: len(re.findall(rf"{qid}: removed$", f.log("qmgr"), re.M)) == 2, timeout=30,
               what="the second removal")
    f.wait_log("mda", rf"{qid}: .*already delivered")
    assert len(copies(f, tok)) == 1
    assert f.spool_ids("queue") == [] and f.spool_ids("state") == []


def test_a_relayed_message_is_removed_with_its_state_file(twohost, outside):
    host = twohost
    # A relayed copy has no delivery record to meet a repeat: that removal is synced (on a worker).
    sink = outside(SmtpSink)
    transport_map(host, {"far.test": f"{sink.addr}:25"}, data_done_timeout="60s")
    host.start("mda", "relay", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, ["x@far.test", DEMO], tok)
    qid = host.wait_log("qmgr", r"(\w+): removed$", timeout=30).group(1)
    assert host.spool_ids("queue") == [] and host.spool_ids("state") == []
    assert any(tok.encode() in m for m in sink.messages())
    assert len(copies(host, tok)) == 1
    assert re.search(rf"{qid}: to=<x@far\.test> .*status=sent", host.log("qmgr"))


def test_a_healthy_message_leaves_while_thousands_wait_for_a_dead_destination(twohost, outside):
    host = twohost
    sink = outside(SmtpSink)
    transport_map(host, {"dead.test": f"{loopback_host()}:25", "alive.test": f"{sink.addr}:25"},
                  data_done_timeout="60s")
    host.set(qmgr_retry_schedule="10m", qmgr_destination_concurrency="5")
    backlog = 3000
    write_queue_files(host, "someone@dead.test", backlog)
    host.start("mda", "relay", "qmgr", "smtpd")
    host.wait_log("qmgr", r"destination dead\.test: no host could be reached; held back", timeout=120)
    tok = uuid.uuid4().hex
    send(host, ["bob@alive.test"], tok)
    wait_until(lambda: any(tok.encode() in m for m in sink.messages()), timeout=60, what="the healthy message")
    log = host.log("qmgr")
    # Only the probes went out: the backlog waits for the destination, not tried message by message.
    tried = len(re.findall(r"to=<someone@dead\.test> .*status=deferred \(", log))
    assert 1 <= tried <= 10, tried
    assert len(host.spool_ids("queue")) == backlog


def holding_peer(release):
    """A peer that takes DATA and then holds its reply until `release` is set."""
    seen = threading.Event()

    def handler(conn, peer):
        conn.sendall(b"220 hold.test ESMTP\r\n")
        while True:
            line = peer.readline(conn)
            if line is None:
                return
            verb = line[:4].upper()
            if verb == "EHLO":
                conn.sendall(b"250-hold.test\r\n250 8BITMIME\r\n")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                conn.sendall(b"250 2.0.0 Ok\r\n")
            elif verb == "DATA":
                conn.sendall(b"354 go ahead\r\n")
                if peer.read_data(conn) is None:
                    return
                seen.set()
                release.wait(60)
                return
            elif verb == "QUIT":
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                conn.sendall(b"502 5.5.2 Unknown command\r\n")
    return handler, seen


def test_relay_killed_mid_transfer_holds_the_destination_back(twohost, outside):
    host = twohost
    release = threading.Event()
    handler, seen = holding_peer(release)
    peer = outside(ScriptedPeer, handler)
    sink = outside(SmtpSink)
    transport_map(host, {"hold.test": f"{peer.addr}:25", "alive.test": f"{sink.addr}:25"},
                  data_done_timeout="60s")
    host.set(qmgr_retry_schedule="1h")
    host.start("mda", "relay", "qmgr", "smtpd")
    try:
        send(host, ["a@hold.test"], "first")
        assert seen.wait(30), "the peer got no data"
        host.kill("relay")
        # The crash is a failure of the destination: held back, not cleared.
        host.wait_log("qmgr", r"destination hold\.test: the transfer ended without replies; held back", timeout=30)
        host.start("relay")
        seen.clear()
        send(host, ["b@hold.test"], "second")
        send(host, ["c@alive.test"], "third")
        wait_until(lambda: any(b"third" in m for m in sink.messages()), timeout=30, what="the other domain's message")
        host.wait_log("qmgr", r"destination hold\.test is held back for \d+s after failures", timeout=30)
        assert not seen.is_set(), "a transaction went to the destination during its back-off"
        # Both messages for the destination wait in the queue: the first one unknown, the second untried.
        assert len(host.spool_ids("queue")) == 2
    finally:
        release.set()


def test_a_message_waiting_untried_for_a_dead_destination_gets_its_delay_warning(twohost):
    # One transaction at a time: the first message finds the destination dead, the second waits
    # untried (queued, no state file); past delay_warning_time both senders are told.
    host = twohost
    transport_map(host, {"dead.test": f"{loopback_host()}:25"}, data_done_timeout="60s")
    host.set(qmgr_retry_schedule="1h", qmgr_destination_concurrency="1", delay_warning_time="2s",
             maximal_queue_lifetime="1h")
    host.start("mda", "relay", "qmgr", "smtpd")
    send(host, ["x@dead.test"], "first")
    send(host, ["y@dead.test"], "second")
    host.wait_log("qmgr", r"destination dead\.test: no host could be reached; held back", timeout=30)
    wait_until(lambda: len(re.findall(r"sender delay notification", host.log("qmgr"))) == 2, timeout=30,
               what="two delay warnings")
    log = host.log("qmgr")
    assert len(re.findall(r"to=<[xy]@dead\.test> .*status=deferred \(", log)) == 1, log[-3000:]
    wait_until(lambda: len(host.mail(SENDER)) == 2, timeout=30, what="the warnings in the sender's mailbox")
    texts = [open(p, "rb").read() for p in host.mail(SENDER)]
    assert all(b"Action: delayed" in t for t in texts)
    assert sorted(b"y@dead.test" in t for t in texts) == [False, True]
