"""Mail is never lost: daemons SIGKILLed at named points (test_pause_at), and what a restart makes of it."""
import glob
import os
import smtplib
import socket
import threading
import time
import uuid

import pytest

DEMO = "demo@example.test"


def message(tok):
    return f"From: a@outside.test\r\nTo: {DEMO}\r\nSubject: crash {tok}\r\n\r\nbody {tok}\r\n"


def copies(f, tok):
    return [p for p in f.mail(DEMO) if f"body {tok}\n".encode() in open(p, "rb").read()]


def spool_files(f, sub):
    return glob.glob(os.path.join(f.keys["spool_dir"], sub, "*"))


def send_in_background(f, tok):
    """Sends one message in a thread; returns (thread, result dict with 'reply' or 'error')."""
    result = {}

    def run():
        try:
            with socket.create_connection(("127.0.0.1", f.port("smtp")), timeout=30) as s:
                fp = s.makefile("rb")
                fp.readline()
                s.sendall(b"EHLO crash.test\r\n")
                while not fp.readline().startswith(b"250 "):
                    pass
                for cmd in (b"MAIL FROM:<a@outside.test>\r\n", f"RCPT TO:<{DEMO}>\r\n".encode(), b"DATA\r\n"):
                    s.sendall(cmd)
                    fp.readline()
                s.sendall(message(tok).encode() + b".\r\n")
                result["reply"] = fp.readline().decode()
        except OSError as e:
            result["error"] = str(e)

    t = threading.Thread(target=run)
    t.start()
    return t, result


def send(f, tok):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", [DEMO], message(tok))


@pytest.fixture
def host(ferry):
    ferry.add_domain("example.test")
    ferry.add_account(DEMO, "demo-secret")
    return ferry


def test_smtpd_killed_before_250_leaves_nothing(host):
    host.set(**{"smtpd.test_pause_at": "smtpd-before-commit"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    t, result = send_in_background(host, tok)
    host.wait_log("smtpd", r"paused at smtpd-before-commit")
    assert spool_files(host, "incoming"), "the kill must land while the message is being received"
    host.kill("smtpd")
    t.join(10)
    assert not result.get("reply", "").startswith("250"), result
    host.set(**{"smtpd.test_pause_at": ""})
    host.restart("qmgr")
    host.start("smtpd")
    send(host, "after-" + tok)  # the restarted pipeline works
    host.wait_mail(DEMO, 1)
    time.sleep(1)
    assert copies(host, tok) == []
    assert spool_files(host, "incoming") == []


def test_smtpd_killed_after_commit_delivers(host):
    host.set(**{"smtpd.test_pause_at": "smtpd-after-commit"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    t, result = send_in_background(host, tok)
    host.wait_log("smtpd", r"paused at smtpd-after-commit")
    assert spool_files(host, "queue"), "the kill must land after the commit"
    host.kill("smtpd")
    t.join(10)
    host.set(**{"smtpd.test_pause_at": ""})
    host.start("smtpd")
    host.restart("qmgr")  # qmgr was never told: its start-up scan finds the message
    host.wait_mail(DEMO, 1)
    time.sleep(1)
    assert len(copies(host, tok)) == 1


def test_smtpd_killed_right_after_250_delivers(host):
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, tok)
    host.kill("smtpd")
    host.wait_mail(DEMO, 1)
    time.sleep(1)
    assert len(copies(host, tok)) == 1


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
    host.wait_mail(DEMO, 1)
    time.sleep(2)
    assert len(copies(host, tok)) == 1
    host.wait_log("qmgr", r"removed")


def test_qmgr_killed_after_handoff_delivers_at_most_twice(host):
    host.set(**{"qmgr.test_pause_at": "qmgr-after-handoff"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, tok)
    qid = host.wait_log("qmgr", r"(\w+): paused at qmgr-after-handoff").group(1)
    host.kill("qmgr")
    assert len(copies(host, tok)) == 1
    host.set(**{"qmgr.test_pause_at": ""})
    host.start("qmgr")
    host.wait_log("qmgr", rf"{qid}: removed$")
    # The kill came before the state was saved: the restart delivers again, once (at most twice).
    assert 1 <= len(copies(host, tok)) <= 2
    assert len(copies(host, tok)) == 2
    assert spool_files(host, "queue") == [] and spool_files(host, "state") == []


def test_mda_killed_mid_lmtp_is_retried(host):
    host.set(**{"mda.test_pause_at": "mda-before-reply"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, tok)
    host.wait_log("mda", r"paused at mda-before-reply")
    host.kill("mda")
    host.set(**{"mda.test_pause_at": ""})
    host.start("mda")
    host.wait_log("qmgr", r"status=sent", timeout=20)
    time.sleep(1)
    assert 1 <= len(copies(host, tok)) <= 2


def test_mda_killed_between_tmp_and_new_shows_no_half_message(host):
    host.set(**{"mda.test_pause_at": "mda-after-tmp"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, tok)
    host.wait_log("mda", r"paused at mda-after-tmp")
    tmp = glob.glob(os.path.join(host.maildir(DEMO), "tmp", "*"))
    assert tmp, "the kill must land with the message in tmp/"
    host.kill("mda")
    assert copies(host, tok) == [], "a message in tmp/ must not be visible"
    # The restarted mda sweeps tmp/ files older than maildir_tmp_max_age.
    host.set(**{"mda.test_pause_at": "", "maildir_tmp_max_age": "1s"})
    time.sleep(1.5)
    host.start("mda")
    host.wait_mail(DEMO, 1, timeout=20)
    time.sleep(1)
    assert len(copies(host, tok)) == 1
    assert not [p for p in tmp if os.path.exists(p)], "the stale tmp/ file was not cleaned"
