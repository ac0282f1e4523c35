"""Queue tools: ferry-admin queue list|show|flush|hold|release|delete|requeue while ferry-qmgr runs."""
import os
import re
import signal
import subprocess

import pytest

from ferry_harness import binary, wait_until


def submit(ferry, *rcpts, sender="demo@example.test", subject="queued"):
    p = subprocess.run([binary("sendmail"), "-C", ferry.conf, "-f", sender, *rcpts],
                       input=f"Subject: {subject}\n\nbody\n", capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p


def deferred_id(ferry, rcpt, count=1):
    """The queue id of the message whose recipient was deferred `count` times (from qmgr's log)."""
    regex = rf"(\w+): to=<{re.escape(rcpt)}> .*status=deferred"
    wait_until(lambda: len(re.findall(regex, ferry.log("qmgr"))) >= count, what=f"{count} deferrals of {rcpt}")
    return re.findall(regex, ferry.log("qmgr"))[-1]


def deferrals(ferry, qid):
    return len(re.findall(rf"^.*{qid}: to=<[^>]+> .*status=deferred", ferry.log("qmgr"), re.M))


@pytest.fixture
def waiting(host):
    """qmgr without ferry-mda: local mail is deferred (the agent is down) and retried only after an hour."""
    host.set(qmgr_retry_schedule="1h")
    host.start("qmgr")
    submit(host, "demo@example.test")
    qid = deferred_id(host, "demo@example.test")
    # The deferral's state is saved on qmgr's commit threads, after the log line.
    wait_until(lambda: host.spool_ids("state") == [qid], what="the deferral's state file")
    return host, qid


def test_hold_is_never_attempted_survives_a_restart_and_release_delivers(waiting):
    ferry, qid = waiting
    p = ferry.admin("queue", "hold", qid)
    assert f"{qid} held" in p.stdout
    ferry.wait_log("qmgr", rf"{qid}: held by the administrator")
    ferry.start("mda")
    # A flush makes every deferred recipient due, but not those of a held message.
    p = ferry.admin("queue", "flush")
    assert p.stdout.startswith("0 recipients of 0 messages"), p.stdout
    assert re.search(rf"^{qid}!", ferry.admin("queue", "list").stdout, re.M)
    ferry.restart("qmgr")
    assert "held" in open(os.path.join(ferry.keys["spool_dir"], "state", qid)).read()
    assert ferry.admin("queue", "flush").stdout.startswith("0 recipients"), "held across the restart"
    assert "held:     yes" in ferry.admin("queue", "show", qid).stdout
    assert ferry.mail("demo@example.test") == []
    assert deferrals(ferry, qid) == 1
    p = ferry.admin("queue", "release", qid)
    assert f"{qid} released" in p.stdout
    ferry.admin("queue", "flush")
    ferry.wait_mail("demo@example.test")
    ferry.wait_log("qmgr", rf"{qid}: removed")
    assert ferry.admin("queue", "list").stdout == "Mail queue is empty\n"


def test_delete_while_qmgr_runs(waiting):
    ferry, qid = waiting
    assert ferry.spool_ids("queue") == [qid] and ferry.spool_ids("state") == [qid]
    p = ferry.admin("queue", "delete", qid)
    assert f"{qid} deleted" in p.stdout
    assert ferry.spool_ids("queue") == [] and ferry.spool_ids("state") == []
    ferry.wait_log("qmgr", rf"{qid}: deleted by the administrator \(from=<demo@example\.test>, 1 recipients")
    ferry.start("mda")
    assert ferry.admin("queue", "flush").stdout.startswith("0 recipients")
    # A delivery of it would have been logged by now: the flush ran the scheduler.
    ferry.restart("qmgr")
    assert ferry.mail("demo@example.test") == []
    assert "status=sent" not in ferry.log("qmgr")
    # Unknown ids and bad ids are the user's error.
    p = ferry.admin("queue", "delete", qid, check=False)
    assert p.returncode == 1 and f"no message {qid} in the queue" in p.stderr
    p = ferry.admin("queue", "hold", "../etc", check=False)
    assert p.returncode == 1 and "not a queue id" in p.stderr


def test_control_commands_fail_clearly_without_qmgr(waiting):
    ferry, qid = waiting
    ferry.stop_one("qmgr")
    for args in (("flush",), ("hold", qid), ("release", qid), ("delete", qid), ("requeue", qid)):
        p = ferry.admin("queue", *args, check=False)
        assert p.returncode == 75, (args, p.returncode, p.stderr)
        assert "ferry-qmgr is not running" in p.stderr
    # list and show read the spool: they work without qmgr.
    assert qid in ferry.admin("queue", "list").stdout
    show = ferry.admin("queue", "show", qid).stdout
    assert "sender:   demo@example.test" in show and "Subject: queued" in show
    assert re.search(r"deferred  demo@example\.test, 1 attempt, next try .*: ", show)
    assert ferry.spool_ids("queue") == [qid]


def test_requeue_and_flush_try_a_deferred_recipient_at_once(host):
    host.set(qmgr_retry_schedule="1h")
    host.start("mda", "qmgr")
    submit(host, "someone@far.test", "other@away.test")
    qid = deferred_id(host, "someone@far.test")
    deferred_id(host, "other@away.test")
    assert deferrals(host, qid) == 2
    p = host.admin("queue", "requeue", qid)
    assert "2 recipients due now" in p.stdout
    wait_until(lambda: deferrals(host, qid) == 4, what="both recipients tried again after requeue")
    host.wait_log("qmgr", rf"{qid}: requeued by the administrator: 2 recipients due now")
    # flush of one domain tries only that domain's recipient.
    p = host.admin("queue", "flush", "far.test")
    assert p.stdout.startswith("1 recipients of 1 messages"), p.stdout
    wait_until(lambda: deferrals(host, qid) == 5, what="the far.test recipient tried again after flush")
    assert len(re.findall(r"to=<other@away\.test> .*status=deferred", host.log("qmgr"))) == 2
    assert host.admin("queue", "flush", "nowhere.test").stdout.startswith("0 recipients")
    # sendmail -q is a flush of the whole queue.
    p = subprocess.run([binary("sendmail"), "-C", host.conf, "-q"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    wait_until(lambda: deferrals(host, qid) == 7, what="both recipients tried again after sendmail -q")
    # The requeue expanded the recipient afresh: its back-off (attempt count) started over. The state
    # file is saved right after the log line, so the listing may show the attempt a moment later.
    wait_until(lambda: "deferred  someone@far.test, 3 attempts: no relay transport configured"
               in host.admin("queue", "list").stdout, what="the listing shows the third attempt")


def test_delete_of_a_message_in_flight_is_refused_and_it_is_delivered(host):
    host.set(**{"mda.test_pause_at": "mda-after-intent"})
    host.start("mda", "qmgr")
    submit(host, "demo@example.test")
    qid = host.wait_log("mda", r"(\w+): paused at mda-after-intent").group(1)
    p = host.admin("queue", "delete", qid, check=False)
    assert p.returncode == 75, (p.returncode, p.stderr)
    assert "in flight" in p.stderr and "try again" in p.stderr
    p = host.admin("queue", "requeue", qid, check=False)
    assert p.returncode == 75 and "in flight" in p.stderr
    assert host.spool_ids("queue") == [qid]
    host.kill("mda", signal.SIGCONT)
    host.wait_mail("demo@example.test")
    host.wait_log("qmgr", rf"{qid}: removed")
    assert "deleted by the administrator" not in host.log("qmgr")
