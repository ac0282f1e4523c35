"""Exactly once: a local recipient gets one copy through slow agents and kills at every hand-off step."""
import glob
import os
import re
import signal
import smtplib
import threading
import time
import uuid

import pytest

from ferry_harness import BUILD, wait_until

DEMO = "demo@example.test"
SENDER = "sender@example.test"
SHIM = os.path.join(BUILD, "tests", "tools", "fault-inject.so")


def message(tok):
    return f"From: {SENDER}\r\nTo: {DEMO}\r\nSubject: once {tok}\r\n\r\nbody {tok}\r\n"


def copies(f, tok):
    return [p for p in f.mail(DEMO) if f"body {tok}\n".encode() in open(p, "rb").read()]


def failure_reports(f, tok):
    """Reports in the sender's mailbox that say the token's message failed."""
    out = []
    for p in f.mail(SENDER):
        data = open(p, "rb").read()
        if tok.encode() in data and b"Action: failed" in data:
            out.append(p)
    return out


def send(f, tok):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.sendmail(SENDER, [DEMO], message(tok))


def queue_empty(f):
    return f.spool_ids("queue") == [] and f.spool_ids("state") == []


@pytest.fixture
def twohost(host):
    host.add_account(SENDER, "sender-secret")
    return host


def test_slow_agent_delivers_every_message_once_and_bounces_none(twohost):
    # ferry-mda's mailbox fsyncs take 0.7 s and the daemon is stopped again and again for longer
    # than qmgr's 1 s LMTP timeout, while mail flows; the queue lifetime is shorter than the whole
    # run, so an invented "deferred" would expire into a bounce of a delivered recipient.
    f = twohost
    f.set(qmgr_lmtp_timeout="1s", qmgr_retry_schedule="1s", maximal_queue_lifetime="4s",
          delay_warning_time="0")
    f.start("mda", env={"LD_PRELOAD": SHIM, "FERRY_FAULT_PREFIX": f.maildir(DEMO) + "/",
                        "FERRY_FAULT_CALL": "fsync", "FERRY_FAULT_ERRNO": "none", "FERRY_FAULT_DELAY_MS": "700"})
    f.start("qmgr", "smtpd")
    toks = [uuid.uuid4().hex for _ in range(30)]
    errors = []

    def sender():
        for tok in toks:
            try:
                send(f, tok)
            except (OSError, smtplib.SMTPException) as e:
                errors.append((tok, repr(e)))
            time.sleep(0.05)

    t = threading.Thread(target=sender)
    t.start()
    mda = f.pid("mda")
    end = time.time() + 10
    while time.time() < end and t.is_alive():
        time.sleep(0.3)
        os.kill(mda, signal.SIGSTOP)
        time.sleep(1.6)  # past the LMTP timeout, with replies owed
        os.kill(mda, signal.SIGCONT)
    t.join(30)
    assert not errors, errors
    wait_until(lambda: queue_empty(f), timeout=120, what="queue emptied")
    wait_until(lambda: not [p for p in glob.glob(os.path.join(f.keys["spool_dir"], "queue", "*"))],
               what="reports delivered")
    delivered = {tok: len(copies(f, tok)) for tok in toks}
    reports = {tok: len(failure_reports(f, tok)) for tok in toks}
    for tok in toks:
        assert delivered[tok] <= 1, f"{tok}: {delivered[tok]} copies"
        # Never both; a message the agent never took in may expire, but then its sender knows.
        assert delivered[tok] + reports[tok] == 1, (tok, delivered[tok], reports[tok])
    assert sum(delivered.values()) >= len(toks) // 2, delivered
    # The run must have gone through replies lost after the final dot, or it proved nothing.
    assert re.search(r"status=unknown", f.log("qmgr")), f.log("qmgr")[-3000:]


# Each pause point of the hand-off, and which daemon stops there: the other side keeps running.
HANDOFF_POINTS = [
    ("qmgr", "qmgr-before-handoff"),
    ("mda", "mda-after-intent"),
    ("mda", "mda-after-link"),
    ("mda", "mda-before-reply"),
    ("qmgr", "qmgr-after-handoff"),
]


@pytest.mark.parametrize("daemon,point", HANDOFF_POINTS, ids=[p for _, p in HANDOFF_POINTS])
def test_kill_at_each_handoff_step_leaves_one_copy(twohost, daemon, point):
    f = twohost
    f.set(**{f"{daemon}.test_pause_at": point})
    f.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(f, tok)
    f.wait_log(daemon, rf"paused at {re.escape(point)}")
    f.kill(daemon)
    f.set(**{f"{daemon}.test_pause_at": ""})
    f.start(daemon)
    wait_until(lambda: copies(f, tok), timeout=30, what=f"a copy of {tok}")
    wait_until(lambda: queue_empty(f), timeout=30, what="queue emptied")
    assert len(copies(f, tok)) == 1, f.all_logs()[-4000:]
    assert failure_reports(f, tok) == []
