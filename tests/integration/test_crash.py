"""Mail is never lost: daemons SIGKILLed at named points (test_pause_at), and what a restart makes of it."""
import glob
import os
import re
import smtplib
import threading
import time
import uuid

from ferry_harness import SmtpClient, text_of, tmp_files, wait_until

DEMO = "demo@example.test"


def message(tok):
    return f"From: a@outside.test\r\nTo: {DEMO}\r\nSubject: crash {tok}\r\n\r\nbody {tok}\r\n"


def copies(f, tok):
    return [p for p in f.mail(DEMO) if f"body {tok}\n".encode() in open(p, "rb").read()]


def send_in_background(f, tok):
    """Sends one message in a thread; returns (thread, result dict with 'reply' or 'error')."""
    result = {}

    def run():
        try:
            c = SmtpClient(f.port("smtp"))
            for cmd in ("EHLO crash.test", "MAIL FROM:<a@outside.test>", f"RCPT TO:<{DEMO}>"):
                assert c.cmd(cmd)[0] == 250, cmd
            assert c.cmd("DATA")[0] == 354
            c.send(message(tok).encode() + b".\r\n")
            result["reply"] = c.reply()
            c.close()
        except (OSError, AssertionError) as e:
            result["error"] = repr(e)

    t = threading.Thread(target=run)
    t.start()
    return t, result


def send(f, tok):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", [DEMO], message(tok))


def delivered_once(f, tok):
    """Waits for the token's copy and the queue to empty; a second copy would come with it."""
    wait_until(lambda: copies(f, tok), what=f"a copy of {tok}")
    wait_until(lambda: f.spool_ids("queue") == [] and f.spool_ids("state") == [], what="queue emptied")
    return len(copies(f, tok))


def test_smtpd_killed_before_250_leaves_nothing(host):
    host.set(**{"smtpd.test_pause_at": "smtpd-before-commit"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    t, result = send_in_background(host, tok)
    host.wait_log("smtpd", r"paused at smtpd-before-commit")
    assert host.spool_ids("incoming"), "the kill must land while the message is being received"
    host.kill("smtpd")
    t.join(10)
    assert "error" in result, result  # no reply at all, so no 250
    host.set(**{"smtpd.test_pause_at": ""})
    host.restart("qmgr")
    host.wait_log("qmgr", r"removed incomplete file from incoming/")
    host.start("smtpd")
    after = "after-" + tok
    send(host, after)  # the restarted pipeline works; the lost message would have come before it
    assert delivered_once(host, after) == 1
    assert copies(host, tok) == []
    assert host.spool_ids("incoming") == []


def test_smtpd_killed_between_link_and_unlink_delivers_once(host):
    # Both names of one file: committed, but the client has no 250 and the incoming name is left.
    host.set(**{"smtpd.test_pause_at": "smtpd-after-link"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    t, result = send_in_background(host, tok)
    qid = host.wait_log("smtpd", r"(\w+): paused at smtpd-after-link").group(1)
    assert host.spool_ids("incoming") == [qid] and host.spool_ids("queue") == [qid]
    host.kill("smtpd")
    t.join(10)
    assert "error" in result, result
    host.set(**{"smtpd.test_pause_at": ""})
    host.restart("qmgr")  # never told: its start-up removes the incoming name and finds the queue file
    host.wait_log("qmgr", rf"{qid}: removed incomplete file from incoming/")
    assert delivered_once(host, tok) == 1
    assert host.spool_ids("incoming") == []


def test_smtpd_killed_after_commit_delivers(host):
    host.set(**{"smtpd.test_pause_at": "smtpd-after-commit"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    t, result = send_in_background(host, tok)
    qid = host.wait_log("smtpd", r"(\w+): paused at smtpd-after-commit").group(1)
    assert host.spool_ids("queue") == [qid], "the kill must land after the commit"
    assert host.spool_ids("incoming") == []
    host.kill("smtpd")
    t.join(10)
    assert "error" in result, result
    host.set(**{"smtpd.test_pause_at": ""})
    host.start("smtpd")
    host.restart("qmgr")  # qmgr was never told: its start-up scan finds the message
    assert delivered_once(host, tok) == 1


def test_smtpd_killed_right_after_250_delivers(host):
    # The client has its 250, qmgr was never told: the next queue scan must find the message.
    host.set(qmgr_scan_interval="1s", **{"smtpd.test_pause_at": "smtpd-after-reply"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    t, result = send_in_background(host, tok)
    qid = host.wait_log("smtpd", r"(\w+): paused at smtpd-after-reply").group(1)
    t.join(10)
    assert result.get("reply", (0,))[0] == 250, result
    host.kill("smtpd")
    assert host.spool_ids("queue") == [qid], "a 250 before the commit"
    assert delivered_once(host, tok) == 1


def test_qmgr_killed_before_handoff_delivers_exactly_once(host):
    host.set(**{"qmgr.test_pause_at": "qmgr-before-handoff"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, tok)
    host.wait_log("qmgr", r"paused at qmgr-before-handoff")
    host.kill("qmgr")
    assert copies(host, tok) == []
    host.set(**{"qmgr.test_pause_at": ""})
    host.start("qmgr")
    assert delivered_once(host, tok) == 1
    host.wait_log("qmgr", r"removed")


def test_qmgr_killed_after_handoff_delivers_once(host):
    # A retry: the first attempt found no ferry-mda, so the message has a state file.
    host.set(**{"qmgr.test_pause_at": "qmgr-after-handoff"})
    host.start("qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, tok)
    host.wait_log("qmgr", r"status=deferred \(cannot connect")
    host.start("mda")
    qid = host.wait_log("qmgr", r"(\w+): paused at qmgr-after-handoff", timeout=20).group(1)
    # Saved before the RCPT went out: a restart takes it as unknown (maybe delivered), never as new.
    state = open(os.path.join(host.keys["spool_dir"], "state", qid)).read()
    assert re.search(r"^rcpt\t0\thanded_off\t", state, re.M), state
    host.kill("qmgr")
    assert len(copies(host, tok)) == 1
    host.set(**{"qmgr.test_pause_at": ""})
    host.start("qmgr")
    host.wait_log("qmgr", rf"{qid}: removed$")
    # The kill came before the state was saved: the restart hands the message off again, and
    # ferry-mda's delivery record answers it without a second copy.
    host.wait_log("mda", rf"{qid}: to=<{re.escape(DEMO)}> already delivered")
    assert len(copies(host, tok)) == 1
    assert host.spool_ids("queue") == [] and host.spool_ids("state") == []


def test_qmgr_killed_with_a_retry_state_synced_not_renamed_delivers_once(host):
    # A retry's handed_off state is saved on qmgr's commit threads: written and fsync'd as
    # state/<id>.<n>.tmp, then renamed. Killed in between, nothing went out and the old state holds.
    host.set(qmgr_retry_schedule="1s")
    host.start("qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, tok)
    qid = host.wait_log("qmgr", rf"(\w+): to=<{re.escape(DEMO)}> .*status=deferred \(cannot connect").group(1)
    state_dir = os.path.join(host.keys["spool_dir"], "state")
    wait_until(lambda: host.spool_ids("state") == [qid], what="the deferral's state file")
    host.set(**{"qmgr.test_pause_at": "qmgr-state-synced"})
    host.restart("qmgr")
    host.start("mda")
    host.wait_log("qmgr", rf"{qid}: paused at qmgr-state-synced", timeout=20)
    [tmp] = glob.glob(os.path.join(state_dir, f"{qid}.*.tmp"))
    assert re.search(r"^rcpt\t0\thanded_off\t", open(tmp).read(), re.M), "the hand-off's save"
    assert re.search(r"^rcpt\t0\tdeferred\t", open(os.path.join(state_dir, qid)).read(), re.M)
    host.kill("qmgr")
    assert copies(host, tok) == [], "an RCPT went out before its state was on disk"
    host.set(**{"qmgr.test_pause_at": ""})
    host.start("qmgr")
    host.wait_log("qmgr", rf"{qid}\.\d+\.tmp: removed half-written state file")
    assert delivered_once(host, tok) == 1


def test_mda_killed_mid_lmtp_is_retried(host):
    host.set(**{"mda.test_pause_at": "mda-before-reply"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, tok)
    qid = host.wait_log("mda", r"(\w+): paused at mda-before-reply").group(1)
    assert len(copies(host, tok)) == 1  # delivered, but qmgr has no reply
    host.kill("mda")
    # No reply after the final dot: maybe delivered, so unknown (retried, never bounced), not deferred.
    host.wait_log("qmgr", rf"{qid}: to=<{re.escape(DEMO)}> .*status=unknown")
    host.set(**{"mda.test_pause_at": ""})
    host.start("mda")
    host.wait_log("qmgr", rf"{qid}: to=<{re.escape(DEMO)}> .*status=sent", timeout=20)
    # The retry finds the delivery in ferry-mda's record: no second copy.
    assert delivered_once(host, tok) == 1
    host.wait_log("mda", rf"{qid}: to=<{re.escape(DEMO)}> already delivered")


def test_mda_killed_between_tmp_and_new_shows_no_half_message(host):
    host.set(**{"mda.test_pause_at": "mda-after-tmp"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, tok)
    host.wait_log("mda", r"paused at mda-after-tmp")
    assert tmp_files(host.pid("mda"), host.maildir(DEMO)), "the kill must land with the message in tmp/"
    host.kill("mda")
    assert copies(host, tok) == [], "a message in tmp/ must not be visible"
    # The file in tmp/ had no name (O_TMPFILE): it went with the process.
    assert glob.glob(os.path.join(host.maildir(DEMO), "tmp", "*")) == []
    host.set(**{"mda.test_pause_at": ""})
    host.start("mda")
    assert delivered_once(host, tok) == 1


def test_deferred_retry_time_survives_a_qmgr_kill(host):
    # mda is down: the first attempt defers the recipient until next-try, kept in the state file.
    host.set(qmgr_retry_schedule="4s")
    host.start("qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, tok)
    qid = host.wait_log("qmgr", rf"(\w+): to=<{re.escape(DEMO)}> .*status=deferred \(cannot connect").group(1)
    state = os.path.join(host.keys["spool_dir"], "state", qid)
    pattern = r"^rcpt\t0\tdeferred\t1\t(\d+)\t"
    wait_until(lambda: re.search(pattern, text_of(state), re.M), what="state file")
    next_try = int(re.search(pattern, open(state).read(), re.M).group(1))
    host.kill("qmgr")
    host.start("mda", "qmgr")
    [path] = host.wait_mail(DEMO, 1, timeout=20)
    # Tried again when next-try came, not at once because qmgr restarted.
    assert os.stat(path).st_mtime >= next_try - 0.5, (os.stat(path).st_mtime, next_try)
    assert delivered_once(host, tok) == 1


def test_an_agent_stalled_past_the_timeout_and_the_lifetime_gives_no_bounce(host):
    # ferry-mda stops itself after its commit, before the reply (test point mda-before-reply), longer
    # than qmgr_lmtp_timeout and maximal_queue_lifetime: the recipient may have been delivered, so it
    # is unknown, retried and never expired into a bounce; once an agent answers, a retry resolves it.
    host.set(qmgr_lmtp_timeout="1s", maximal_queue_lifetime="2s", delay_warning_time="0",
             **{"mda.test_pause_at": "mda-before-reply"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, tok)
    qid = host.wait_log("mda", r"(\w+): paused at mda-before-reply", timeout=30).group(1)
    assert len(copies(host, tok)) == 1
    # On a loaded machine the message may be past its lifetime already when this first answer is missed.
    host.wait_log("qmgr", rf"{qid}: to=<{re.escape(DEMO)}> .*status=unknown(, past maximal_queue_lifetime: "
                          r"retried, never bounced)? \(lost connection", timeout=30)
    # Retries while the agent stays stopped fail before the dot: still unknown, past the lifetime.
    host.wait_log("qmgr", rf"{qid}: to=<{re.escape(DEMO)}> .*status=unknown, past maximal_queue_lifetime",
                  timeout=60)
    # Saved on qmgr's commit threads just after that line (a retry in between says handed_off).
    state = os.path.join(host.keys["spool_dir"], "state", qid)
    wait_until(lambda: re.search(r"^rcpt\t0\tunknown\t", text_of(state), re.M), timeout=30,
               what="the recipient saved as unknown")
    # The stalled agent is replaced (the pause point would stop it again at the next delivery).
    host.kill("mda")
    host.set(**{"mda.test_pause_at": ""})
    host.start("mda")
    host.wait_log("qmgr", rf"{qid}: to=<{re.escape(DEMO)}> .*status=sent", timeout=60)
    host.wait_log("qmgr", rf"{qid}: removed$", timeout=30)
    log = host.log("qmgr")
    assert "status=expired" not in log and "status=bounced" not in log and "notification" not in log, log[-3000:]
    # The retry finds the delivery in ferry-mda's record (ferry-mda(8)): no second copy.
    assert len(copies(host, tok)) == 1
