"""One message end to end: its queue id joins the log lines of smtpd, qmgr and mda to its Maildir file."""
import os
import poplib
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


def _messages(log):
    """The message part of each log line, after "<time> <program>[pid]: <level>: "."""
    return [m.group(1) for m in re.finditer(r"^\S+ \S+\[\d+\]: \w+: (.*)$", log, re.M)]


def _session_lines(log, connect_regex, mentions):
    """The session id from its connect line, and every line that mentions one of `mentions`."""
    lines = _messages(log)
    sid = next((m.group(1) for m in map(lambda l: re.match(connect_regex, l), lines) if m), None)
    assert sid, f"no line matches {connect_regex!r}:\n" + "\n".join(lines)
    return sid, [l for l in lines if any(x in l for x in mentions)]


def test_every_line_of_a_session_starts_with_its_session_id(mailhost):
    f = mailhost
    f.start("popd")
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=20) as s:
        s.ehlo("client.test")
        s.mail("tracer@outside.test")
        s.rcpt("demo@example.test")
        code, text = s.data(b"Subject: ids\r\n\r\nbody\r\n")
    assert code == 250
    qid = re.search(rb"queued as (\w+)", text).group(1).decode()
    f.wait_mail("demo@example.test", 1)
    f.wait_log("smtpd", r": disconnect from \[127\.0\.0\.1\]")
    f.wait_log("qmgr", rf"^.*{qid}: removed")
    f.stop_one("qmgr")  # its LMTP connection would wait for the next delivery; stopping ends the session
    f.wait_log("mda", r"^.*: disconnect: ")

    pop = poplib.POP3("127.0.0.1", f.port("pop3"), timeout=10)
    pop.user("demo@example.test")
    pop.pass_("demo-secret")
    assert b"body" in b"\n".join(pop.retr(1)[1])
    pop.quit()
    f.wait_log("popd", r": disconnect from 127\.0\.0\.1")

    # smtpd: one session; its connect, message and disconnect lines all carry its id.
    sid, lines = _session_lines(f.log("smtpd"), r"(S\w+): connect from \[127\.0\.0\.1\]",
                                ["[127.0.0.1]", qid, "tracer@outside.test"])
    assert len(lines) >= 3, lines
    assert all(l.startswith(sid + ": ") for l in lines), lines
    assert any(l.startswith(f"{sid}: {qid}: ") for l in lines), lines

    # mda: the LMTP session that delivered the message; the queue id follows the session id.
    lid, lines = _session_lines(f.log("mda"), r"(L\w+): connect$", [qid, "tracer@outside.test", "demo@example.test"])
    assert any(l.startswith(f"{lid}: {qid}: to=<demo@example.test> delivered") for l in lines), lines
    assert all(l.startswith(lid + ": ") for l in lines), lines
    assert any(l.startswith(lid + ": disconnect") for l in _messages(f.log("mda"))), f.log("mda")

    # qmgr: a transaction's lines start with the queue id; smtpd's notice with the notify session's id.
    lines = [l for l in _messages(f.log("qmgr")) if qid in l]
    assert any(l.startswith(f"{qid}: to=<demo@example.test>") for l in lines), lines
    assert any(re.match(rf"N\w+: {qid}: notified$", l) for l in lines), lines
    assert all(l.startswith(qid + ": ") or re.match(rf"N\w+: {qid}: ", l) for l in lines), lines

    # popd: login, retrieval and logout of the POP3 session.
    pid, lines = _session_lines(f.log("popd"), r"(P\w+): connect from ", ["demo@example.test", "from 127.0.0.1"])
    assert len(lines) >= 3, lines
    assert all(l.startswith(pid + ": ") for l in lines), lines
