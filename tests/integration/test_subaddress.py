"""Subaddresses (RFC 5233, recipient_delimiter): user+tag@domain is accepted at RCPT by ferry-smtpd and by
ferry-mda's LMTP, routed by ferry-qmgr and stored in user's mailbox with the envelope recipient kept as
written, so Sieve's envelope :detail sees the tag; an exact account or alias wins over the base; an unknown
base and a delimiter turned off give 550."""
import os
import smtplib
import subprocess
import uuid

import pytest

from ferry_harness import binary, wait_until
from test_mda_exactly_once import Lmtp
from test_mda_sieve import folder_files, lmtp, message, put_script, with_token

DEMO = "demo@example.test"
LISTS_RULE = 'require ["envelope", "subaddress", "fileinto"];\nif envelope :detail "to" "lists" { fileinto "Lists"; }\n'


def send(f, rcpts, tok):
    msg = f"From: a@outside.test\r\nTo: {rcpts[0]}\r\nSubject: {tok}\r\n\r\nbody {tok}\r\n"
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", rcpts, msg)


def rcpt(f, address):
    """ferry-smtpd's (code, text) for RCPT TO:<address>."""
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.ehlo()
        assert s.mail("a@outside.test")[0] == 250
        code, text = s.rcpt(address)
        return code, text.decode()


def make_folder(f, address, name):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(f.maildir(address), "." + name, sub), exist_ok=True)


def test_a_subaddress_is_delivered_into_the_base_accounts_inbox(mailhost):
    tok = uuid.uuid4().hex
    assert rcpt(mailhost, "Demo+News@example.test")[0] == 250
    send(mailhost, ["demo+news@example.test"], tok)
    assert len(with_token(mailhost.wait_mail(DEMO, 1), tok)) == 1
    # Queued and handed to ferry-mda as written; no mailbox of that name appears.
    mailhost.wait_log("qmgr", r"to=<demo\+news@example\.test>")
    assert not os.path.exists(mailhost.maildir("demo+news@example.test"))


def test_sieve_envelope_detail_sees_the_tag(mailhost):
    make_folder(mailhost, DEMO, "Lists")
    put_script(mailhost, DEMO, LISTS_RULE)
    listed, other = uuid.uuid4().hex, uuid.uuid4().hex
    send(mailhost, ["demo+lists@example.test"], listed)
    send(mailhost, ["demo+other@example.test"], other)
    wait_until(lambda: with_token(folder_files(mailhost, DEMO, "Lists"), listed)
               and with_token(folder_files(mailhost, DEMO), other), what="both messages delivered")
    assert len(with_token(folder_files(mailhost, DEMO, "Lists"), listed)) == 1
    assert with_token(folder_files(mailhost, DEMO), listed) == []
    assert len(with_token(folder_files(mailhost, DEMO), other)) == 1
    assert with_token(folder_files(mailhost, DEMO, "Lists"), other) == []


def test_an_unknown_base_is_refused(mailhost):
    code, text = rcpt(mailhost, "nobody+tag@example.test")
    assert code == 550 and text.startswith("5.1.1"), text


def test_with_the_delimiter_off_a_subaddress_is_unknown(host):
    host.set(recipient_delimiter="")
    host.start("mda", "qmgr", "smtpd")
    code, text = rcpt(host, "demo+tag@example.test")
    assert code == 550 and text.startswith("5.1.1"), text
    assert rcpt(host, DEMO)[0] == 250
    c = Lmtp(host)
    try:
        assert c.cmd("LHLO qmgr.test")[0] == 250
        assert c.cmd("MAIL FROM:<a@outside.test>")[0] == 250
        assert c.cmd("RCPT TO:<demo+tag@example.test>")[0] == 550
    finally:
        c.close()


def test_several_delimiters_each_one_counts(host):
    host.set(recipient_delimiter="+-")
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, ["demo-tag@example.test"], tok)
    assert len(with_token(host.wait_mail(DEMO, 1), tok)) == 1


def test_an_exact_account_wins_over_its_base(host):
    host.add_account("a@example.test", "pw-a-123456")
    host.add_account("a+b@example.test", "pw-ab-123456")
    host.start("mda", "qmgr", "smtpd")
    exact, based = uuid.uuid4().hex, uuid.uuid4().hex
    send(host, ["a+b@example.test"], exact)
    send(host, ["a+c@example.test"], based)
    assert len(with_token(host.wait_mail("a+b@example.test", 1), exact)) == 1
    assert len(with_token(host.wait_mail("a@example.test", 1), based)) == 1
    assert with_token(host.mail("a@example.test"), exact) == []


def test_an_alias_takes_its_subaddresses(host):
    host.admin("alias", "add", "team@example.test", DEMO)
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    send(host, ["team+x@example.test"], tok)
    assert len(with_token(host.wait_mail(DEMO, 1), tok)) == 1


def test_lmtp_and_lda_take_a_subaddress(host):
    make_folder(host, DEMO, "Lists")
    put_script(host, DEMO, LISTS_RULE)
    host.start("mda")
    tok = uuid.uuid4().hex
    [(code, text)] = lmtp(host, ["demo+lists@example.test"], message(tok))
    assert code == 250, text
    assert len(with_token(folder_files(host, DEMO, "Lists"), tok)) == 1
    tok2 = uuid.uuid4().hex
    p = subprocess.run([binary("mda"), "-c", host.conf, "-d", "demo+lists@example.test", "-f", "a@outside.test"],
                       input=message(tok2).encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert len(with_token(folder_files(host, DEMO, "Lists"), tok2)) == 1
    p = subprocess.run([binary("mda"), "-c", host.conf, "-d", "nobody+lists@example.test", "-f", "a@outside.test"],
                       input=message(tok2).encode(), capture_output=True, timeout=30)
    assert p.returncode == 67, p.stderr


def test_ferry_admin_lookup_answers_as_delivery_does(host):
    out = host.admin("lookup", "demo+x@example.test").stdout
    assert "kind account" in out and "recipient demo+x@example.test" in out, out
