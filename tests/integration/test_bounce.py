"""Bounces (RFC 3464 DSNs) from ferry-qmgr: to the sender's Maildir, never to <>, expiry and delay warnings."""
import glob
import os
import re
import smtplib
import uuid

import pytest

import dsn_reports
from dsn_reports import ALICE, DEMO, alias_to_nobody, host, parse, report, reports  # noqa: F401 (host)
from ferry_harness import text_of, wait_until


# A queue file as ferry-smtpd writes it, for senders and recipients smtpd would not take.
def inject(f, rcpts, sender, data):
    return dsn_reports.inject(f, rcpts, data, sender=sender)


def send(f, sender, rcpts, tok, extra=""):
    msg = f"From: <{sender}>\r\nTo: <{rcpts[0]}>\r\nSubject: test {tok}\r\nX-Token: {tok}\r\n\r\nbody {tok}\r\n{extra}"
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.sendmail(sender, rcpts, msg)


def dsn_parts(msg):
    """(human text, per-message fields, [per-recipient fields], quoted original headers) of a DSN."""
    human, per_msg, rcpts, third = report(msg)
    assert third.get_content_type() == "text/rfc822-headers", third.get_content_type()
    assert len(msg.get_payload()) == 3
    assert rcpts, "no per-recipient fields"
    return human, per_msg, rcpts, third.get_payload()


def dsns(f, address):
    return reports(f, address)


def test_unknown_user_after_alias_expansion_bounces_to_the_sender(host):
    alias_to_nobody(host, "nobody-alias@example.test", "ghost@example.test")
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, ALICE, ["nobody-alias@example.test"], tok)
    m = host.wait_log("qmgr", r"^.*: (\w+): to=<ghost@example\.test> orig_to=<nobody-alias@example\.test> "
                              r"relay=local status=bounced \(550 5\.1\.1 .*\)$")
    qid = m.group(1)
    new = host.wait_log("qmgr", rf"{qid}: sender non-delivery notification: (\w+)$").group(1)
    [path] = host.wait_mail(ALICE, 1)
    host.wait_log("qmgr", rf"{new}: to=<{ALICE}> .*status=sent")
    host.wait_log("qmgr", rf"{new}: removed$")
    host.wait_log("qmgr", rf"{qid}: removed$")
    # The mda's lines carry the report's own queue id (from its Received: line).
    host.wait_log("mda", rf"{new}: to=<{ALICE}> delivered to maildir")

    raw = open(path, "rb").read().decode()
    assert raw.startswith("Return-Path: <>\n"), raw[:200]
    msg = parse(path)
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["To"] == f"<{ALICE}>"
    assert msg["Auto-Submitted"] == "auto-replied"
    human, per_msg, rcpts, headers = dsn_parts(msg)
    assert per_msg["Reporting-MTA"] == "dns; mx.test"
    assert per_msg["X-Ferry-Queue-ID"] == qid
    assert per_msg["Arrival-Date"]
    [r] = rcpts
    assert r["Final-Recipient"] == "rfc822; ghost@example.test"
    assert r["Original-Recipient"] == "rfc822; nobody-alias@example.test"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Diagnostic-Code"].startswith("smtp; 550 5.1.1")
    assert "ghost@example.test" in human and "nobody-alias@example.test" in human
    # The original header is quoted, the body is not.
    assert f"X-Token: {tok}" in headers and f"Subject: test {tok}" in headers
    assert f"with ESMTP id {qid}" in headers
    assert f"body {tok}" not in raw
    assert host.mail(DEMO) == []
    assert host.spool_ids("queue") == [] and host.spool_ids("state") == []


def test_over_quota_bounces_with_5_2_2(host):
    host.admin("quota", "set", DEMO, "2000", "0")
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, ALICE, [DEMO], tok, extra=("y" * 70 + "\r\n") * 40)  # 2880 bytes
    qid = host.wait_log("qmgr", rf"^.*: (\w+): to=<{DEMO}> .*relay=local status=bounced \(552 5\.2\.2 Mailbox full\)$").group(1)
    host.wait_log("mda", rf"{qid}: to=<{DEMO}> not delivered: Mailbox full \({DEMO}: 0 bytes used")
    [path] = host.wait_mail(ALICE, 1)
    _, _, [r], headers = dsn_parts(parse(path))
    assert r["Final-Recipient"] == f"rfc822; {DEMO}"
    assert r["Action"] == "failed" and r["Status"] == "5.2.2"
    assert r["Diagnostic-Code"] == "smtp; 552 5.2.2 Mailbox full"
    assert f"X-Token: {tok}" in headers
    assert host.mail(DEMO) == []
    # A message that fits still goes in.
    tok2 = uuid.uuid4().hex
    send(host, ALICE, [DEMO], tok2)
    [ok] = host.wait_mail(DEMO, 1)
    assert tok2 in open(ok).read()
    host.wait_log("qmgr", r": removed$")
    wait_until(lambda: host.spool_ids("queue") == [], what="queue emptied")


def test_one_report_lists_every_recipient_that_failed_in_the_round(host):
    alias_to_nobody(host, "nobody-alias@example.test", "ghost@example.test")
    alias_to_nobody(host, "other-alias@example.test", "ghost2@example.test")
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, ALICE, ["nobody-alias@example.test", DEMO, "other-alias@example.test"], tok)
    host.wait_mail(DEMO, 1)
    [path] = host.wait_mail(ALICE, 1)
    _, _, rcpts, _ = dsn_parts(parse(path))
    assert sorted(r["Final-Recipient"] for r in rcpts) == ["rfc822; ghost2@example.test", "rfc822; ghost@example.test"]
    assert all(r["Status"] == "5.1.1" and r["Action"] == "failed" for r in rcpts)
    assert len(re.findall(r"sender non-delivery notification", host.log("qmgr"))) == 1
    wait_until(lambda: host.spool_ids("queue") == [], what="queue emptied")  # any second report too
    assert len(host.mail(ALICE)) == 1


def test_expired_message_is_bounced_after_one_delay_warning(host):
    host.set(maximal_queue_lifetime="3s", delay_warning_time="1s", qmgr_retry_schedule="1s")
    host.start("mda", "qmgr")
    tok = uuid.uuid4().hex
    qid = inject(host, ["far@remote.test"], ALICE, f"Subject: slow {tok}\nX-Token: {tok}\n\nbody {tok}\n")
    warn = host.wait_log("qmgr", rf"{qid}: sender delay notification: (\w+)$").group(1)
    # The warning is remembered in the state file, so a restart does not send it again.
    state = os.path.join(host.keys["spool_dir"], "state", qid)
    wait_until(lambda: re.search(r"^warned \d+$", text_of(state), re.M),
               timeout=5, what="warned record")
    host.wait_log("qmgr", rf"{warn}: removed$")  # a kill during its delivery could deliver it twice
    host.kill("qmgr")
    host.start("qmgr")
    host.wait_log("qmgr", rf"{qid}: to=<far@remote\.test> orig_to=<far@remote\.test> relay=none status=expired "
                          r"\(message expired after 3s in the queue \(last error: no relay transport configured\)\)")
    bounce = host.wait_log("qmgr", rf"{qid}: sender non-delivery notification: (\w+)$").group(1)
    host.wait_log("qmgr", rf"{qid}: removed$")
    wait_until(lambda: host.spool_ids("queue") == [], what="reports delivered")
    files = host.mail(ALICE)
    assert len(files) == 2  # exactly one warning, one bounce
    assert len(re.findall(rf"{qid}: sender delay notification", host.log("qmgr"))) == 1
    by_id = {}
    for p in files:
        msg = parse(p)
        by_id[msg["Message-ID"]] = msg
    delayed = by_id[f"<{warn}.delay@mx.test>"]
    failed = by_id[f"<{bounce}.bounce@mx.test>"]

    assert delayed["Subject"] == "Delayed Mail (still being retried)"
    human, _, [r], headers = dsn_parts(delayed)
    assert r["Final-Recipient"] == "rfc822; far@remote.test"
    assert r["Action"] == "delayed"
    assert r["Status"].startswith("4.")
    assert r["Will-Retry-Until"]
    assert r["Diagnostic-Code"] == "X-Ferry; no relay transport configured"
    assert "will be retried until" in human
    assert f"X-Token: {tok}" in headers

    _, _, [r], headers = dsn_parts(failed)
    assert r["Action"] == "failed"
    assert r["Status"] == "4.4.7"
    assert "message expired" in r["Diagnostic-Code"]
    assert f"X-Token: {tok}" in headers
    assert host.spool_ids("queue") == []


def test_no_bounce_for_the_null_sender(host):
    alias_to_nobody(host, "nobody-alias@example.test", "ghost@example.test")
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("", ["nobody-alias@example.test"], f"Subject: {tok}\r\n\r\nbody {tok}\r\n")
    qid = host.wait_log("qmgr", r"^.*: (\w+): from=<> nrcpt=1 \(queued\)$").group(1)
    host.wait_log("qmgr", rf"{qid}: to=<ghost@example\.test> .*status=bounced \(550 5\.1\.1")
    host.wait_log("qmgr", rf"{qid}: no bounce for null sender$")
    host.wait_log("qmgr", rf"{qid}: removed$")  # a report would have been queued before the removal
    log = host.log("qmgr")
    assert "sender non-delivery notification" not in log
    assert len(re.findall(r"\(queued\)$", log, re.M)) == 1  # nothing new was queued
    assert host.mail(ALICE) == [] and host.mail(DEMO) == []
    assert glob.glob(os.path.join(host.keys["mail_dir"], "example.test", "*", "Maildir", "new", "*")) == []
    assert host.spool_ids("queue") == [] and host.spool_ids("state") == []


def test_a_bounce_that_fails_is_not_bounced_again(host):
    # The sender is an address of ours without a mailbox: its bounce fails too, and stops there.
    host.start("mda", "qmgr")
    qid = inject(host, ["ghost@example.test"], "vanished@example.test", "Subject: x\n\nbody\n")
    new = host.wait_log("qmgr", rf"{qid}: sender non-delivery notification: (\w+)$").group(1)
    host.wait_log("qmgr", rf"{new}: to=<vanished@example\.test> .*status=bounced \(550 5\.1\.1")
    host.wait_log("qmgr", rf"{new}: no bounce for null sender$")
    host.wait_log("qmgr", rf"{new}: removed$")
    host.wait_log("qmgr", rf"{qid}: removed$")
    wait_until(lambda: host.spool_ids("queue") == [], what="queue emptied")
    assert len(re.findall(r"sender non-delivery notification", host.log("qmgr"))) == 1
    assert host.spool_ids("queue") == []


def test_expiry_and_delay_for_the_null_sender_send_nothing(host):
    host.set(maximal_queue_lifetime="3s", delay_warning_time="1s")
    host.start("mda", "qmgr")
    qid = inject(host, ["far@remote.test"], "", "Subject: x\n\nbody\n")
    host.wait_log("qmgr", rf"{qid}: no delay warning for null sender$")
    host.wait_log("qmgr", rf"{qid}: to=<far@remote\.test> .*status=expired")
    host.wait_log("qmgr", rf"{qid}: no bounce for null sender$")
    host.wait_log("qmgr", rf"{qid}: removed$")
    assert "notification" not in host.log("qmgr")
    assert host.spool_ids("queue") == []


def test_bounce_to_an_outside_sender_waits_in_the_queue(host):
    host.start("mda", "qmgr")
    qid = inject(host, ["ghost@example.test"], "someone@outside.test", "Subject: x\n\nbody\n")
    new = host.wait_log("qmgr", rf"{qid}: sender non-delivery notification: (\w+)$").group(1)
    host.wait_log("qmgr", rf"{qid}: removed$")
    host.wait_log("qmgr", rf"{new}: to=<someone@outside\.test> orig_to=<someone@outside\.test> relay=none "
                          r"status=deferred \(no relay transport configured\)")
    assert host.spool_ids("queue") == [new]
    queued = open(os.path.join(host.keys["spool_dir"], "queue", new)).read()
    assert "\nsender \n" in queued and "\nrcpt someone@outside.test\n" in queued
    assert "Content-Type: multipart/report; report-type=delivery-status;" in queued


def test_delay_warning_disabled_with_zero(host):
    host.set(maximal_queue_lifetime="3s", delay_warning_time="0")
    host.start("mda", "qmgr")
    qid = inject(host, ["far@remote.test"], ALICE, "Subject: x\n\nbody\n")
    host.wait_log("qmgr", rf"{qid}: removed$", timeout=15)
    [path] = host.wait_mail(ALICE, 1)
    _, _, [r], _ = dsn_parts(parse(path))
    assert r["Status"] == "4.4.7"
    assert "delay notification" not in host.log("qmgr")


@pytest.mark.parametrize("point", ["qmgr-before-bounce", "qmgr-after-bounce"])
def test_qmgr_killed_around_the_bounce_then_the_cause_fixed_bounces_once_and_never_delivers(host, point):
    # The failure and the bounce's queue id are saved before the bounce is committed: after a kill on
    # either side of that commit and a fix of the cause (the account made), the restart finishes the
    # bounce (once: queue/<id> is looked for) and never delivers the message as well.
    host.set(**{"qmgr.test_pause_at": point})
    host.start("mda", "qmgr")
    qid = inject(host, ["ghost@example.test"], ALICE, "Subject: crash\n\nbody\n")
    host.wait_log("qmgr", rf"{qid}: paused at {point}")
    state = open(os.path.join(host.keys["spool_dir"], "state", qid)).read()
    saved = re.search(r"^rcpt\t0\tfailed\t\d+\t\d+\tghost@example\.test\tghost@example\.test\t[^\t]*\t5\.1\.1\t(\w+)$",
                      state, re.M)
    assert saved, state
    bounce_id = saved.group(1)
    assert (bounce_id in host.spool_ids("queue")) == (point == "qmgr-after-bounce")
    host.kill("qmgr")
    host.add_account("ghost@example.test", "pw")
    host.set(**{"qmgr.test_pause_at": ""})
    host.start("qmgr")
    host.wait_log("qmgr", rf"{qid}: removed$")
    host.wait_log("qmgr", rf"{bounce_id}: removed$")
    assert host.mail("ghost@example.test") == []  # failed stays failed: never delivered after all
    [path] = host.wait_mail(ALICE, 1)
    _, _, [r], _ = dsn_parts(parse(path))
    assert r["Final-Recipient"] == "rfc822; ghost@example.test" and r["Status"] == "5.1.1"
    assert re.search(rf"^Received: by .* id {bounce_id};", open(path).read(), re.M)  # under the saved id
    wait_until(lambda: host.spool_ids("queue") == [], what="queue emptied")
    assert len(host.mail(ALICE)) == 1


def test_failed_recipient_in_the_state_file_gets_its_bounce_at_start(host):
    # As a qmgr that died before its bounce was committed leaves it: the recipient failed, no report yet.
    qid = inject(host, ["ghost@example.test", DEMO], ALICE, "Subject: recovered\n\nbody\n")
    os.makedirs(os.path.join(host.keys["spool_dir"], "state"), exist_ok=True)
    with open(os.path.join(host.keys["spool_dir"], "state", qid), "w") as fp:
        fp.write(f"ferry-state 1\nid {qid}\n"
                 "rcpt\t0\tfailed\t0\t0\tghost@example.test\tghost@example.test\t550 5.1.1 No such user here\t5.1.1\n"
                 f"rcpt\t1\tdone\t0\t0\t{DEMO}\t{DEMO}\t250 2.0.0 ok\n"
                 "end 2\n")
    host.start("mda", "qmgr")
    new = host.wait_log("qmgr", rf"{qid}: sender non-delivery notification: (\w+)$").group(1)
    host.wait_log("qmgr", rf"{qid}: removed$")
    [path] = host.wait_mail(ALICE, 1)
    _, _, [r], headers = dsn_parts(parse(path))
    assert r["Final-Recipient"] == "rfc822; ghost@example.test" and r["Status"] == "5.1.1"
    assert "Subject: recovered" in headers
    assert host.mail(DEMO) == []  # done stays done
    assert "ghost" not in host.log("mda")  # the failed recipient is not tried again
    host.wait_log("qmgr", rf"{new}: removed$")


def test_qmgr_killed_after_the_delay_warning_is_committed_warns_again(host):
    # The warning is in queue/, the state file has no warned record yet: a second warning, never none.
    host.set(maximal_queue_lifetime="1h", delay_warning_time="1s", **{"qmgr.test_pause_at": "qmgr-after-warning"})
    host.start("mda", "qmgr")
    qid = inject(host, ["far@remote.test"], ALICE, "Subject: slow\n\nbody\n")
    host.wait_log("qmgr", rf"{qid}: paused at qmgr-after-warning")
    first = re.search(rf"{qid}: sender delay notification: (\w+)$", host.log("qmgr"), re.M).group(1)
    assert first in host.spool_ids("queue")
    host.kill("qmgr")
    state = os.path.join(host.keys["spool_dir"], "state", qid)

    def warned():
        return re.search(r"^warned \d+$", text_of(state), re.M)

    assert not warned()
    host.set(**{"qmgr.test_pause_at": ""})
    host.start("qmgr")
    wait_until(warned, what="warned record")
    warnings = host.wait_mail(ALICE, 2)
    assert all(dsn_parts(parse(p))[2][0]["Action"] == "delayed" for p in warnings)
    wait_until(lambda: host.spool_ids("queue") == [qid], what="warnings delivered")
    # Once recorded, a later restart does not warn again: the retries go on without a warning.
    host.kill("qmgr")
    retries = len(re.findall(rf"{qid}: to=<far@remote\.test> .*status=deferred", host.log("qmgr")))
    host.start("qmgr")
    wait_until(lambda: len(re.findall(rf"{qid}: to=<far@remote\.test> .*status=deferred", host.log("qmgr")))
               > retries + 1, what="two retries after the restart")
    assert len(re.findall(rf"{qid}: sender delay notification", host.log("qmgr"))) == 2
    wait_until(lambda: host.spool_ids("queue") == [qid], what="warnings delivered")
    assert len(host.mail(ALICE)) == 2


QMGR_BOUND_KB = 16 * 1024   # peak RSS allowed to qmgr bouncing a 20 MB message (reading it whole: over 40 MB)


def peak_kb(pid):
    with open(f"/proc/{pid}/status") as fp:
        return int(next(line for line in fp if line.startswith("VmHWM:")).split()[1])


def test_a_large_message_bounces_with_its_header_and_bounded_memory(host):
    # Only the header section is quoted, so only it is read from the queue file.
    tok = uuid.uuid4().hex
    line = "0123456789" * 7 + "abcdef\n"
    data = (f"From: <{ALICE}>\nTo: <ghost@example.test>\nSubject: big {tok}\nX-Token: {tok}\n\n"
            f"body {tok}\n" + line * (20_000_000 // len(line)))
    qid = inject(host, ["ghost@example.test"], ALICE, data)
    host.start("mda", "qmgr")
    new = host.wait_log("qmgr", rf"{qid}: sender non-delivery notification: (\w+)$", timeout=60).group(1)
    [path] = host.wait_mail(ALICE, 1, timeout=60)
    host.wait_log("qmgr", rf"{qid}: removed$")
    peak = peak_kb(host.pid("qmgr"))
    msg = parse(path)
    human, per_msg, [r], headers = dsn_parts(msg)
    assert per_msg["X-Ferry-Queue-ID"] == qid
    assert r["Final-Recipient"] == "rfc822; ghost@example.test" and r["Action"] == "failed"
    assert f"Subject: big {tok}" in headers and f"X-Token: {tok}" in headers
    raw = open(path, "rb").read()
    assert f"body {tok}".encode() not in raw and len(raw) < 10_000
    host.wait_log("qmgr", rf"{new}: removed$")
    assert peak < QMGR_BOUND_KB, f"ferry-qmgr peaked at {peak} kB RSS bouncing {len(data)} bytes"
