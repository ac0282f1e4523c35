"""Sieve redirect and vacation through the real daemons (smtpd, qmgr, mda): the vacation reply goes once per
sender per period through qmgr's submit_socket, survives a restart of ferry-mda, never answers the null
sender or a list; a redirect keeps the original sender, carries the marker, and a loop stops.

Each test first checks that ferry-mda runs the account's Sieve script at all (a probe script files into a
folder); where it does not, the test is skipped rather than failed."""
import glob
import os
import smtplib

import pytest

from ferry_harness import wait_until

USER = "demo@example.test"      # the account with the rules (conftest's `host`)
CAROL = "carol@example.test"    # a local account that writes to USER and gets the replies
BOB = "bob@example.test"


def put_script(f, address, text, name="rules"):
    """Makes `text` the active script of `address`, as ferry-managesieve lays it out (ferry-mailstore(5))."""
    d = os.path.join(f.maildir(address), "sieve")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".sieve"), "w") as fh:
        fh.write(text)
    link = os.path.join(d, "active")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(name + ".sieve", link)


def send(f, sender, rcpt, subject, mid, extra=""):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.sendmail(sender, [rcpt], f"From: {sender or 'nobody@outside.test'}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
                                   f"Message-ID: {mid}\r\n{extra}\r\nbody of {mid}\r\n")


def folder_mail(f, address, folder):
    md = os.path.join(f.maildir(address), "." + folder)
    return glob.glob(os.path.join(md, "new", "*")) + glob.glob(os.path.join(md, "cur", "*"))


def read(path):
    with open(path, errors="replace") as fh:
        return fh.read()


def header(text, name):
    """The first value of a header field, unfolded."""
    head = text.split("\n\n", 1)[0].replace("\n ", " ").replace("\n\t", " ")
    for line in head.split("\n"):
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return None


def queue_empty(f):
    """Nothing waits in the spool: every reply and redirect queued so far has been delivered."""
    return not f.spool_ids("incoming") and not f.spool_ids("queue")


@pytest.fixture
def sieve_host(mailhost):
    """mailhost with CAROL and BOB, skipped unless ferry-mda runs Sieve scripts."""
    mailhost.add_account(CAROL, "carol-secret")
    mailhost.add_account(BOB, "bob-secret")
    put_script(mailhost, USER, 'require ["fileinto", "mailbox"];\nfileinto :create "Probe";\n', name="probe")
    send(mailhost, CAROL, USER, "probe", "<probe@example.test>")
    wait_until(lambda: folder_mail(mailhost, USER, "Probe") or mailhost.mail(USER), what="the probe delivered")
    if not folder_mail(mailhost, USER, "Probe"):
        pytest.skip("ferry-mda does not run Sieve scripts in this build")
    return mailhost


VACATION = 'require "vacation";\nvacation :days 1 :subject "Away" "I am away until Monday.";\n'


def test_vacation_replies_once_per_sender_per_period(sieve_host):
    f = sieve_host
    put_script(f, USER, VACATION)
    send(f, CAROL, USER, "lunch?", "<m1@example.test>")
    replies = f.wait_mail(CAROL, 1)
    reply = read(replies[0])
    assert header(reply, "Auto-Submitted") == "auto-replied"
    assert header(reply, "Return-Path") == "<>"
    assert header(reply, "Subject") == "Away"
    assert header(reply, "In-Reply-To") == "<m1@example.test>"
    assert USER in header(reply, "From")
    assert "I am away until Monday." in reply.split("\n\n", 1)[1]

    send(f, CAROL, USER, "lunch tomorrow?", "<m2@example.test>")
    f.wait_mail(USER, 2)
    f.wait_log("mda", r"<carol@example\.test> was answered within 1 days already")
    wait_until(lambda: queue_empty(f), what="the queue empty")
    assert len(f.mail(CAROL)) == 1

    # The memory is on disk: a restarted ferry-mda still knows CAROL was answered.
    f.restart("mda")
    send(f, CAROL, USER, "still there?", "<m3@example.test>")
    f.wait_mail(USER, 3)
    wait_until(lambda: f.log("mda").count("was answered within 1 days already") >= 2, what="the second refusal")
    wait_until(lambda: queue_empty(f), what="the queue empty")
    assert len(f.mail(CAROL)) == 1
    assert os.path.exists(os.path.join(f.maildir(USER), "sieve", ".vacation"))


def test_vacation_never_answers_the_null_sender_or_a_list(sieve_host):
    f = sieve_host
    put_script(f, USER, VACATION)
    send(f, "", USER, "a bounce", "<n1@example.test>")
    send(f, CAROL, USER, "list traffic", "<n2@example.test>", extra="List-Id: <talk.example.test>\r\n")
    send(f, CAROL, USER, "auto", "<n3@example.test>", extra="Auto-Submitted: auto-generated\r\n")
    send(f, CAROL, USER, "bulk", "<n4@example.test>", extra="Precedence: bulk\r\n")
    f.wait_mail(USER, 4)
    # A plain message from CAROL is answered: once that reply is in and the queue is empty, any
    # reply to the four above would be in CAROL's Maildir too.
    send(f, CAROL, USER, "plain", "<n5@example.test>")
    replies = f.wait_mail(CAROL, 1)
    wait_until(lambda: queue_empty(f), what="the queue empty")
    replies = f.mail(CAROL)
    assert len(replies) == 1
    assert header(read(replies[0]), "In-Reply-To") == "<n5@example.test>"


def test_redirect_keeps_the_sender_and_marks_the_message(sieve_host):
    f = sieve_host
    put_script(f, USER, f'redirect "{BOB}";\n')
    send(f, CAROL, USER, "for bob", "<r1@example.test>")
    got = read(f.wait_mail(BOB, 1)[0])
    assert header(got, "X-Ferry-Redirected") == USER
    assert header(got, "Return-Path") == f"<{CAROL}>"
    assert header(got, "Message-ID") == "<r1@example.test>"
    f.wait_log("mda", r"redirected to <bob@example\.test> for <demo@example\.test>")
    wait_until(lambda: queue_empty(f), what="the queue empty")
    assert f.mail(USER) == []


def test_a_redirect_loop_stops_and_keeps_the_message(sieve_host):
    f = sieve_host
    put_script(f, USER, f'redirect "{BOB}";\n')
    put_script(f, BOB, f'redirect "{USER}";\n')
    send(f, CAROL, USER, "round and round", "<loop@example.test>")
    kept = f.wait_mail(USER, 1)
    assert header(read(kept[0]), "Message-ID") == "<loop@example.test>"
    f.wait_log("mda", r"redirect to <bob@example\.test> for <demo@example\.test> refused: .*loop")
    wait_until(lambda: queue_empty(f), what="the queue empty")
    assert f.mail(BOB) == []
    assert len(f.mail(USER)) == 1
