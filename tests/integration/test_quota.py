"""ferry-mda quotas (552 5.2.2 / 452 4.2.2 over LMTP, LDA exit codes) and the removal of stale tmp/ files."""
import glob
import os
import smtplib
import socket
import subprocess
import time
import uuid

import pytest

from ferry_harness import binary, tmp_files, wait_until

DEMO = "demo@example.test"
ALICE = "alice@example.test"
SENDER = "a@outside.test"


@pytest.fixture
def mda(ferry):
    ferry.add_domain("example.test")
    ferry.add_account(DEMO, "demo-secret")
    ferry.add_account(ALICE, "alice-secret")
    return ferry


def lmtp_path(f):
    return os.path.join(f.keys["run_dir"], "lmtp.sock")


def message(tok, size=0):
    """A message with CRLF line ends; `size` pads the body to about that many bytes."""
    body = f"body {tok}\r\n" + ("z" * 78 + "\r\n") * (size // 80)
    return f"From: <{SENDER}>\r\nSubject: {tok}\r\n\r\n{body}"


def stored_size(msg, rcpt=DEMO):
    """The size ferry-mda stores: Return-Path and Delivered-To on top, LF line ends (the S= of the name)."""
    return len(f"Return-Path: <{SENDER}>\nDelivered-To: {rcpt}\n") + len(msg.replace("\r\n", "\n").encode())


def lmtp_send(f, msg, rcpt=DEMO, sender=SENDER):
    """One LMTP transaction with Python's client; returns (code, text) of the one DATA reply."""
    with smtplib.LMTP(lmtp_path(f), timeout=30) as s:
        s.ehlo("client.test")
        s.mail(sender)
        code, text = s.rcpt(rcpt)
        assert code == 250, (code, text)
        try:
            return s.data(msg.encode())
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error


def set_quota(f, address, nbytes, messages):
    f.admin("quota", "set", address, str(nbytes), str(messages))


def test_byte_quota_at_its_limit_over_lmtp(mda):
    first, second = message("one", 400), message("two", 300)
    set_quota(mda, DEMO, stored_size(first) + stored_size(second), 0)
    mda.start("mda")
    assert lmtp_send(mda, first)[0] == 250
    assert lmtp_send(mda, second)[0] == 250  # exactly full
    code, text = lmtp_send(mda, message("three"))
    assert (code, text) == (552, b"5.2.2 Mailbox full"), (code, text)
    assert len(mda.mail(DEMO)) == 2
    mda.wait_log("mda", rf"to=<{DEMO}> not delivered: Mailbox full \({DEMO}: {stored_size(first) + stored_size(second)} "
                        r"bytes used, \d+ more would exceed the quota")
    # Making room (a reader deleting a message) lets mail in again; the quota is counted afresh.
    os.unlink(mda.mail(DEMO)[0])
    assert lmtp_send(mda, message("four"))[0] == 250


def test_a_message_larger_than_the_whole_quota_is_refused_into_an_empty_mailbox(mda):
    set_quota(mda, DEMO, 1000, 0)
    mda.start("mda")
    code, text = lmtp_send(mda, message("big", 2000))
    assert (code, text) == (552, b"5.2.2 Mailbox full")
    assert mda.mail(DEMO) == []


def test_message_count_quota_over_lmtp(mda):
    set_quota(mda, DEMO, 0, 2)
    mda.start("mda")
    assert lmtp_send(mda, message("one"))[0] == 250
    # A message a reader moved to cur/ with flags still counts.
    [path] = mda.mail(DEMO)
    md = mda.maildir(DEMO)
    os.rename(path, os.path.join(md, "cur", os.path.basename(path) + ":2,S"))
    assert lmtp_send(mda, message("two"))[0] == 250
    code, text = lmtp_send(mda, message("three"))
    assert (code, text) == (552, b"5.2.2 Mailbox full")
    mda.wait_log("mda", rf"Mailbox full \({DEMO}: 2 messages, the quota is 2\)")
    assert len(mda.mail(DEMO)) == 2
    # Another account is not affected.
    assert lmtp_send(mda, message("alice"), rcpt=ALICE)[0] == 250


def test_quota_exceeded_temporary_answers_452(mda):
    mda.set(quota_exceeded_temporary="yes")
    set_quota(mda, DEMO, 0, 1)
    mda.start("mda")
    assert lmtp_send(mda, message("one"))[0] == 250
    code, text = lmtp_send(mda, message("two"))
    assert (code, text) == (452, b"4.2.2 Mailbox full")
    assert len(mda.mail(DEMO)) == 1


def dsn(tok, size=0):
    """A delivery status notification as ferry-qmgr sends it: the null sender, a report body."""
    body = f"This is the mail system. {tok}\r\n" + ("y" * 78 + "\r\n") * (size // 80)
    return (f"From: MAILER-DAEMON@mx.test\r\nTo: {DEMO}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n{body}")


@pytest.mark.parametrize("temporary", ["no", "yes"])
def test_a_small_dsn_is_stored_over_quota_and_a_large_one_waits(mda, temporary):
    mda.set(quota_exceeded_temporary=temporary, mda_quota_dsn_allowance="4k")
    set_quota(mda, DEMO, 0, 1)
    mda.start("mda")
    assert lmtp_send(mda, message("fills"))[0] == 250
    # An ordinary message is refused as before: the sender gets a bounce, or the queue waits.
    assert lmtp_send(mda, message("more"))[0] == (552 if temporary == "no" else 452)
    # A notice about the owner's own mail is stored over quota: nothing else would tell them.
    tok = uuid.uuid4().hex
    assert lmtp_send(mda, dsn(tok), sender="")[0] == 250
    assert any(tok in open(p).read() for p in mda.mail(DEMO))
    mda.wait_log("mda", rf"{DEMO}: over quota, but a delivery status notification of \d+ bytes is stored anyway")
    # A large one is never refused for good (a bounce of a bounce goes nowhere): 452, kept in the queue.
    code, text = lmtp_send(mda, dsn("big", 8000), sender="")
    assert (code, text) == (452, b"4.2.2 Mailbox full"), (code, text)
    assert len(mda.mail(DEMO)) == 2
    # Once there is room it is delivered like any message.
    for p in mda.mail(DEMO):
        os.unlink(p)
    assert lmtp_send(mda, dsn("big", 8000), sender="")[0] == 250


def test_quota_change_applies_without_restart_and_per_recipient(mda):
    mda.start("mda")
    assert lmtp_send(mda, message("before"))[0] == 250
    set_quota(mda, DEMO, 0, 1)  # seen at the next lookup (account_db_check_interval = 0)
    # One transaction for two recipients: one reply each after the dot (RFC 2033 4.2).
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(lmtp_path(mda))
        fp = s.makefile("rb")
        assert fp.readline().startswith(b"220 ")
        s.sendall(b"LHLO client.test\r\n")
        while True:  # the LHLO reply's lines up to the last one; EOF must not spin
            line = fp.readline()
            assert line, "connection closed during the LHLO reply"
            if line.startswith(b"250 "):
                break
        s.sendall(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{DEMO}>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n".encode())
        assert [fp.readline()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
        s.sendall(message("both").encode() + b".\r\n")
        assert fp.readline() == b"552 5.2.2 Mailbox full\r\n"
        assert fp.readline().startswith(b"250 2.0.0 <alice@example.test> delivered")
    assert len(mda.mail(DEMO)) == 1 and len(mda.mail(ALICE)) == 1
    set_quota(mda, DEMO, 0, 0)  # unlimited again
    assert lmtp_send(mda, message("after"))[0] == 250


def lda(f, msg, *extra):
    """ferry-mda in LDA mode, as an MTA runs it: the message on standard input."""
    return subprocess.run([binary("mda"), "-c", f.conf, *extra, "-d", DEMO, "-f", SENDER],
                          input=msg.encode(), capture_output=True, timeout=30)


def test_lda_exit_codes_over_quota(mda):
    set_quota(mda, DEMO, 0, 1)
    assert lda(mda, message("one")).returncode == 0
    p = lda(mda, message("two"))
    assert p.returncode == 73, p  # EX_CANTCREAT: the MTA bounces (Postfix: 5.2.0)
    assert b"Mailbox full" in p.stderr
    p = lda(mda, message("two"), "-o", "quota_exceeded_temporary=yes")
    assert p.returncode == 75, p  # EX_TEMPFAIL: the MTA keeps it queued
    assert len(mda.mail(DEMO)) == 1


def test_a_dangling_name_without_size_does_not_fail_the_usage_count(mda):
    # The failed stat of a name without S= (removed or dangling) must not make the end of readdir look
    # like an error: that answered 451 (LDA: 75) to every delivery into this mailbox.
    set_quota(mda, DEMO, 100000, 0)
    md = mda.maildir(DEMO)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    os.symlink("/nonexistent", os.path.join(md, "cur", "1700000000.M1P1.gone:2,S"))
    mda.start("mda")
    assert lmtp_send(mda, message("one"))[0] == 250
    p = lda(mda, message("two"))
    assert p.returncode == 0, p.stderr
    assert len(glob.glob(os.path.join(md, "new", "*"))) == 2


def make_stale(path, age=3600):
    t = time.time() - age
    os.utime(path, (t, t))


def test_stale_tmp_files_are_removed_on_delivery(mda):
    mda.set(maildir_tmp_max_age="1s")
    mda.start("mda")
    assert lmtp_send(mda, message("first"))[0] == 250  # creates the Maildir
    tmp = os.path.join(mda.maildir(DEMO), "tmp")
    stale = os.path.join(tmp, "1700000000.M1P1.host")
    open(stale, "w").write("left by a crash")
    make_stale(stale)
    time.sleep(1.2)  # the per-Maildir check runs at most every maildir_tmp_max_age (at most hourly)
    fresh = os.path.join(tmp, "9999999999.M1P1.host")
    open(fresh, "w").write("being written right now")
    os.utime(fresh, (time.time() + 60, time.time() + 60))  # stays young however slow this machine is
    assert lmtp_send(mda, message("second"))[0] == 250
    assert not os.path.exists(stale)
    assert os.path.exists(fresh), "a file younger than maildir_tmp_max_age stays"
    mda.wait_log("mda", rf"removed 1 stale files from {tmp}")
    assert len(mda.mail(DEMO)) == 2


def test_default_max_age_keeps_recent_tmp_files(mda):
    mda.start("mda")
    assert lmtp_send(mda, message("first"))[0] == 250
    stale = os.path.join(mda.maildir(DEMO), "tmp", "1700000000.M1P1.host")
    open(stale, "w").write("x")
    make_stale(stale, 3600)  # an hour: young by the 36-hour rule
    mda.restart("mda")  # the start-up sweep of every Maildir
    assert lmtp_send(mda, message("second"))[0] == 250
    assert os.path.exists(stale)
    make_stale(stale, 37 * 3600)
    mda.restart("mda")
    mda.wait_log("mda", r"removed 1 stale files from .*/tmp")
    assert not os.path.exists(stale)


def test_a_killed_mda_leaves_nothing_in_tmp_and_the_retry_delivers_once(mda):
    mda.set(maildir_tmp_max_age="1s", **{"mda.test_pause_at": "mda-after-tmp"})
    mda.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", mda.port("smtp"), timeout=30) as s:
        s.sendmail(SENDER, [DEMO], message(tok))
    mda.wait_log("mda", r"paused at mda-after-tmp")
    # Written and synced as an unnamed file in tmp/: it goes with the process, nothing to sweep.
    assert len(tmp_files(mda.pid("mda"), mda.maildir(DEMO))) == 1
    assert glob.glob(os.path.join(mda.maildir(DEMO), "tmp", "*")) == []
    mda.kill("mda")
    mda.set(**{"mda.test_pause_at": ""})
    mda.start("mda")
    [path] = mda.wait_mail(DEMO, 1, timeout=20)
    assert tok in open(path).read()
    assert glob.glob(os.path.join(mda.maildir(DEMO), "tmp", "*")) == []