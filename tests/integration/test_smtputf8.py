"""SMTPUTF8 (RFC 6531) in ferry-smtpd: UTF-8 addresses with the MAIL parameter, 553 5.6.7 without it,
delivery to an account with a UTF-8 local part."""
import smtplib

import pytest

from ferry_harness import SmtpClient

USER = "j\u00f6rg@example.test"        # jörg, NFC
CJK = "\u7528\u6237@example.test"       # 用户


@pytest.fixture
def host(ferry):
    ferry.set(qmgr_scan_interval="1s")
    ferry.add_domain("example.test")
    ferry.add_account("demo@example.test", "demo-secret")
    for address in (USER, CJK):
        ferry.admin("account", "add", address, "--utf8", input="pw-secret\n")
    ferry.start("mda", "qmgr", "smtpd")
    return ferry


def message(subject):
    return (f"From: <s\u00e9nder@outside.test>\r\nTo: <{USER}>\r\nSubject: {subject}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nGr\u00fc\u00dfe\r\n").encode()


def test_ehlo_offers_smtputf8(host):
    c = SmtpClient(host.port("smtp"))
    assert "SMTPUTF8" in c.cmd("EHLO client.test")[1]


def test_smtplib_with_smtputf8_delivers_to_utf8_accounts(host):
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.ehlo("client.test")
        assert s.has_extn("smtputf8")
        refused = s.sendmail("s\u00e9nder@outside.test", [USER, CJK], message("utf8"), mail_options=["SMTPUTF8"])
        assert refused == {}
    for address in (USER, CJK):
        [path] = host.wait_mail(address)
        with open(path, "rb") as fp:
            data = fp.read()
        assert "Gr\u00fc\u00dfe".encode() in data
        assert b" with UTF8SMTP id " in data  # RFC 6531 4.3


def test_utf8_without_the_parameter_is_553_5_6_7(host):
    c = SmtpClient(host.port("smtp"))
    assert c.cmd("EHLO client.test")[0] == 250
    code, text = c.cmd("MAIL FROM:<s\u00e9nder@outside.test>")  # sent as UTF-8
    assert (code, text[0][:5]) == (553, "5.6.7"), text
    assert c.cmd("MAIL FROM:<a@outside.test>")[0] == 250
    c.send(f"RCPT TO:<{USER}>\r\n".encode())
    code, text = c.reply()
    assert (code, text[0][:5]) == (553, "5.6.7"), text
    assert c.cmd("RCPT TO:<demo@example.test>")[0] == 250  # the transaction goes on


def test_unknown_utf8_local_part_is_550(host):
    c = SmtpClient(host.port("smtp"))
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@outside.test> SMTPUTF8")[0] == 250
    c.send("RCPT TO:<n\u00f6body@example.test>\r\n".encode())
    assert c.reply()[0] == 550
    # Not well-formed UTF-8 is a syntax error, even with SMTPUTF8.
    c.send(b"RCPT TO:<j\xc3@example.test>\r\n")
    assert c.reply()[0] == 553


def test_queue_file_records_smtputf8(ferry):
    ferry.add_domain("example.test")
    ferry.admin("account", "add", USER, "--utf8", input="pw-secret\n")
    ferry.add_account("demo@example.test", "demo-secret")
    ferry.start("smtpd")  # no qmgr: the message stays in queue/
    with smtplib.SMTP("127.0.0.1", ferry.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", [USER], message("queued"), mail_options=["SMTPUTF8"])
        s.sendmail("a@outside.test", ["demo@example.test"], b"Subject: plain\r\n\r\nx\r\n")
    heads = []
    for path in ferry.spool_files("queue"):
        with open(path, "rb") as fp:
            heads.append(fp.read().partition(b"\ndata\n")[0].decode())
    assert sorted("\nsmtputf8\n" in h + "\n" for h in heads) == [False, True], heads
