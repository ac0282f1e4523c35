"""One message end to end: its queue id joins the log lines of smtpd, qmgr and mda to its Maildir file."""
import os
import re
import smtplib


def test_one_grep_follows_a_message_from_smtp_to_maildir(mailhost):
    f = mailhost
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=20) as s:
        s.ehlo("client.test")
        s.mail("alice@outside.test")
        s.rcpt("demo@example.test")
        code, text = s.data(b"Subject: trace\r\n\r\nfollow me\r\n")
    assert code == 250
    qid = re.search(rb"queued as (\w+)", text).group(1).decode()
    f.wait_mail("demo@example.test", 1)
    mda_line = f.wait_log("mda", rf"^.*{qid}: to=<demo@example.test> delivered to maildir as (\S+)$")
    assert re.search(rf"{qid}: from=<alice@outside.test>", f.log("smtpd"), re.M)
    assert re.search(rf"{qid}: to=<demo@example.test> .*status=sent", f.wait_log("qmgr", rf"{qid}: removed").string)
    name = mda_line.group(1)
    path = os.path.join(f.maildir("demo@example.test"), "new", name)
    assert os.path.exists(path), path
    data = open(path, "rb").read()
    assert f"id {qid}".encode() in data  # the Received: header names the same id
    assert data.endswith(b"follow me\n")
