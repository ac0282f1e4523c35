"""DSN (RFC 3461) end to end: NOTIFY, RET, ENVID and ORCPT taken by ferry-smtpd, kept in the queue file,
honoured by ferry-qmgr's reports in the sender's Maildir."""
import re
import smtplib
import uuid

import pytest

from dsn_reports import ALICE, DEMO, alias_to_nobody, host, inject, report, reports, wait_reports  # noqa: F401 (host)
from ferry_harness import SmtpClient, wait_until

def send(f, rcpts, tok, mail_options=(), rcpt_options=()):
    msg = f"From: <{ALICE}>\r\nTo: <{rcpts[0]}>\r\nSubject: dsn {tok}\r\nX-Token: {tok}\r\n\r\nbody {tok}\r\n"
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.ehlo("client.test")
        assert s.has_extn("dsn")
        assert s.sendmail(ALICE, rcpts, msg, mail_options=list(mail_options), rcpt_options=list(rcpt_options)) == {}



def test_ehlo_offers_dsn_and_bad_parameters_are_501(host):
    host.start("smtpd")
    c = SmtpClient(host.port("smtp"))
    assert "DSN" in c.cmd("EHLO client.test")[1]
    for bad in ("MAIL FROM:<a@outside.test> RET=ALL", "MAIL FROM:<a@outside.test> ENVID=a+zz",
                "MAIL FROM:<a@outside.test> RET=FULL RET=FULL"):
        code, text = c.cmd(bad)
        assert (code, text[0][:5]) == (501, "5.5.4"), (bad, text)
    assert c.cmd("MAIL FROM:<a@outside.test> RET=HDRS ENVID=QQ314159")[0] == 250
    for bad in ("NOTIFY=NEVER,FAILURE", "NOTIFY=SOMETIMES", "ORCPT=demo@example.test", "ORCPT=rfc822;a+"):
        code, text = c.cmd(f"RCPT TO:<{DEMO}> {bad}")
        assert (code, text[0][:5]) == (501, "5.5.4"), (bad, text)
    assert c.cmd(f"RCPT TO:<{DEMO}> NOTIFY=SUCCESS,DELAY,FAILURE ORCPT=rfc822;demo+2Bx@example.test")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: kept\r\n\r\nx\r\n.\r\n")
    assert c.reply()[0] == 250
    [path] = host.spool_files("queue")
    head = open(path, "rb").read().partition(b"\ndata\n")[0].decode()
    assert "\nret HDRS\n" in head and "\nenvid QQ314159\n" in head
    assert f"\nrcpt {DEMO}\nnotify SUCCESS,FAILURE,DELAY\norcpt rfc822;demo+2Bx@example.test" in head


def test_notify_success_gives_a_delivered_report_with_envid_and_orcpt(host):
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, [DEMO], tok, mail_options=["ENVID=env+2B" + tok],
         rcpt_options=["NOTIFY=SUCCESS,DELAY,FAILURE", "ORCPT=rfc822;Demo@Example.test"])
    host.wait_mail(DEMO)
    [msg] = wait_reports(host, ALICE, "delivery report")
    assert msg["Subject"] == "Successful Mail Delivery Report"
    human, per_msg, [r], third = report(msg)
    assert per_msg["Original-Envelope-Id"] == "env+" + tok
    assert r["Action"] == "delivered"
    assert r["Status"].startswith("2.")
    assert r["Final-Recipient"] == f"rfc822; {DEMO}"
    assert r["Original-Recipient"] == "rfc822; Demo@Example.test"
    assert r["Diagnostic-Code"].startswith("smtp; 250")
    assert third.get_content_type() == "text/rfc822-headers"
    assert f"X-Token: {tok}" in third.get_payload()
    assert "delivered" in human
    # One report only, and the delivery itself was not reported on again.
    host.wait_log("qmgr", r"sender delivery notification: \w+$")
    assert len(re.findall(r"sender delivery notification", host.log("qmgr"))) == 1


def test_no_notify_and_notify_failure_give_no_delivered_report(host):
    host.start("mda", "qmgr", "smtpd")
    send(host, [DEMO], "a")
    send(host, [DEMO], "b", rcpt_options=["NOTIFY=FAILURE"])
    host.wait_mail(DEMO, 2)
    wait_until(lambda: host.spool_ids("queue") == [], what="queue empty")
    assert reports(host, ALICE) == []


@pytest.mark.parametrize("ret", ["HDRS", "FULL", None])
def test_failure_report_returns_headers_or_the_full_message(host, ret):
    alias_to_nobody(host, "gone@example.test", "ghost@example.test")
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, ["gone@example.test"], tok, mail_options=[f"RET={ret}"] if ret else [],
         rcpt_options=["NOTIFY=SUCCESS,DELAY,FAILURE"])
    [msg] = wait_reports(host, ALICE, "bounce")
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    _, _, [r], third = report(msg)
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Diagnostic-Code"].startswith("smtp; 550 5.1.1")
    raw = open(host.mail(ALICE)[0], "rb").read().decode()
    if ret == "FULL":
        assert third.get_content_type() == "message/rfc822"
        [original] = third.get_payload()
        assert original["X-Token"] == tok
        assert f"body {tok}" in original.get_payload()
    else:
        assert third.get_content_type() == "text/rfc822-headers"
        assert f"X-Token: {tok}" in third.get_payload()
        assert f"body {tok}" not in raw


@pytest.mark.parametrize("notify", ["NEVER", "SUCCESS,DELAY"])
def test_notify_without_failure_sends_no_bounce(host, notify):
    alias_to_nobody(host, "gone@example.test", "ghost@example.test")
    host.start("mda", "qmgr", "smtpd")
    send(host, ["gone@example.test"], "never", rcpt_options=[f"NOTIFY={notify}"])
    qid = host.wait_log("qmgr", rf"(\w+): to=<ghost@example\.test>: no bounce: NOTIFY={notify}$").group(1)
    host.wait_log("qmgr", rf"{qid}: removed$")
    wait_until(lambda: host.spool_ids("queue") == [], what="queue empty")
    assert host.mail(ALICE) == []
    assert "non-delivery notification" not in host.log("qmgr")


def test_delay_warning_only_for_recipients_that_asked(host):
    host.set(maximal_queue_lifetime="1h", delay_warning_time="1s", qmgr_retry_schedule="1s")
    host.start("mda", "qmgr")
    tok = uuid.uuid4().hex
    data = f"Subject: slow {tok}\nX-Token: {tok}\n\nbody {tok}\n"
    asked = inject(host, [("far1@remote.test", ["notify DELAY"]), ("far2@remote.test", ["notify FAILURE"]),
                          ("far3@remote.test", [])], data, extra="envid slow+2B1\n")
    quiet = inject(host, [("far4@remote.test", ["notify FAILURE,SUCCESS"])], data)
    host.wait_log("qmgr", rf"{asked}: sender delay notification: \w+$")
    host.wait_log("qmgr", rf"{quiet}: no delay warning for NOTIFY without DELAY$")
    [msg] = wait_reports(host, ALICE, "delay warning")
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    _, per_msg, rcpts, _ = report(msg)
    assert per_msg["Original-Envelope-Id"] == "slow+1"
    # far1 asked for DELAY, far3 gave no NOTIFY (ferry's default: failures and delays); far2 did not ask.
    assert sorted(r["Final-Recipient"] for r in rcpts) == ["rfc822; far1@remote.test", "rfc822; far3@remote.test"]
    assert all(r["Action"] == "delayed" for r in rcpts)
    assert len(reports(host, ALICE)) == 1
