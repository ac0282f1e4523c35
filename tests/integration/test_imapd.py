"""ferry-imapd against real IMAP clients (python imaplib) and raw sockets: the connection-level commands."""
import base64
import imaplib
import os
import re
import smtplib
import ssl
import subprocess

import pytest

from ferry_harness import LineConn, binary

USER = "demo@example.test"
PASSWORD = "demo-secret"


def insecure():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture
def imap(host):
    """host with a certificate and ferry-imapd serving imap and imaps."""
    host.tls()
    host.set(imapd_tls_listen="127.0.0.1:0")
    return host


def start(f, **keys):
    """Starts ferry-imapd (once; later calls without keys return its port)."""
    running = "imapd" in f.procs and f.procs["imapd"].poll() is None
    if keys or not running:
        if keys:
            f.set(**keys)
        f.restart("imapd") if running else f.start("imapd")
    return f.port("imap")


def client(f, **keys):
    return imaplib.IMAP4("127.0.0.1", start(f, **keys), timeout=10)


class Raw(LineConn):
    """A raw IMAP connection: `command` sends a line and returns every line up to the tagged reply."""

    def command(self, line, tag):
        self.send(line + "\r\n")
        lines = []
        while True:
            lines.append(self.raw_line().decode())
            if lines[-1].startswith(tag + " "):
                return lines


def test_greeting_capability_login_and_logout(imap):
    c = client(imap)
    assert c.welcome.startswith(b"* OK [CAPABILITY ")
    typ, data = c.capability()
    caps = data[0].decode().split()
    for cap in ("IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "NAMESPACE", "STARTTLS", "AUTH=PLAIN"):
        assert cap in caps, caps
    assert "LOGINDISABLED" not in caps  # loopback may log in without TLS (plaintext_auth = loopback)
    typ, data = c.login(USER, PASSWORD)
    assert typ == "OK"
    typ, data = c.capability()
    assert "STARTTLS" not in data[0].decode().split()  # not after login
    assert c.noop()[0] == "OK"
    typ, data = c.namespace()
    assert typ == "OK" and data[0] == b'(("" "/")) NIL NIL'
    typ, data = c.xatom("ID", '("name" "pytest")')
    assert typ == "OK"
    assert c.untagged_responses.get("ID") == [b'("name" "ferry")']
    typ, data = c._simple_command("ENABLE", "CONDSTORE")
    assert typ == "OK"
    typ, data = c.logout()
    assert typ == "BYE"
    imap.wait_log("imapd", r"login user=demo@example\.test from 127\.0\.0\.1")


def test_wrong_password_is_refused_and_the_session_continues(imap):
    imap.set(auth_failure_delay="0")
    c = client(imap)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        c.login(USER, "wrong")
    assert c.login(USER, PASSWORD)[0] == "OK"
    c.logout()


def test_authenticate_plain_with_and_without_initial_response(imap):
    port = start(imap)
    r = Raw(port)
    assert r.raw_line().startswith(b"* OK")
    ir = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    lines = r.command(f"a1 AUTHENTICATE PLAIN {ir}", "a1")
    assert lines[-1].startswith("a1 OK [CAPABILITY "), lines
    assert r.command("a2 LOGIN x y", "a2")[-1].startswith("a2 BAD")  # not valid once logged in

    c = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    typ, _ = c.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode())
    assert typ == "OK"
    c.logout()

    r = Raw(port)
    r.raw_line()
    r.send("a1 AUTHENTICATE PLAIN\r\n")
    assert r.raw_line() == b"+ "
    assert r.command("*", "a1")[-1].startswith("a1 BAD")  # the client cancelled


def test_authenticate_cancel_empty_initial_response_and_login_mechanism(imap):
    port = start(imap)
    r = Raw(port)
    r.raw_line()
    # "=" is an empty initial response (RFC 4959): SCRAM then asks for the client-first message.
    r.send("a1 AUTHENTICATE SCRAM-SHA-256 =\r\n")
    assert r.raw_line() == b"+ "
    assert r.command("*", "a1") == ["a1 BAD AUTHENTICATE cancelled"]  # RFC 3501 section 6.2.2
    # An empty PLAIN response carries no credentials: BAD, and the session goes on.
    assert r.command("a2 AUTHENTICATE PLAIN =", "a2")[-1].startswith("a2 BAD ")
    assert r.command("a3 AUTHENTICATE CRAM-MD5", "a3") == ["a3 NO unsupported authentication mechanism"]
    r.send("a4 AUTHENTICATE LOGIN\r\n")
    assert r.raw_line() == b"+ " + base64.b64encode(b"Username:")
    r.send(base64.b64encode(USER.encode()).decode() + "\r\n")
    assert r.raw_line() == b"+ " + base64.b64encode(b"Password:")
    r.send("*\r\n")
    assert r.raw_line() == b"a4 BAD AUTHENTICATE cancelled"
    r.send("a5 AUTHENTICATE LOGIN " + base64.b64encode(USER.encode()).decode() + "\r\n")
    assert r.raw_line() == b"+ " + base64.b64encode(b"Password:")
    r.send(base64.b64encode(PASSWORD.encode()).decode() + "\r\n")
    assert r.raw_line().startswith(b"a5 OK [CAPABILITY ")


def test_no_plaintext_login_before_tls_when_the_policy_forbids_it(imap):
    port = start(imap, plaintext_auth="never")
    c = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    caps = c.capability()[1][0].decode().split()
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps and "AUTH=PLAIN" not in caps
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        c.login(USER, PASSWORD)
    c.starttls(ssl_context=insecure())
    caps = c.capability()[1][0].decode().split()
    assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps and "AUTH=PLAIN" in caps
    assert c.login(USER, PASSWORD)[0] == "OK"
    c.logout()
    imap.wait_log("imapd", r"login user=demo@example\.test from 127\.0\.0\.1 \(TLS\)")


def test_implicit_tls_port(imap):
    start(imap, plaintext_auth="never")
    c = imaplib.IMAP4_SSL("127.0.0.1", imap.port("imaps"), ssl_context=insecure(), timeout=10)
    assert "STARTTLS" not in c.capability()[1][0].decode().split()
    assert c.login(USER, PASSWORD)[0] == "OK"
    c.logout()


def test_bad_syntax_gets_bad_and_literals_work(imap):
    r = Raw(start(imap))
    r.raw_line()
    assert r.command("a1 FROBNICATE", "a1")[-1].startswith("a1 BAD")
    r.send("(bad NOOP\r\n")  # no tag can be read: untagged BAD
    assert r.raw_line().startswith(b"* BAD")
    assert r.command("a2 NAMESPACE", "a2")[-1].startswith("a2 BAD")  # not before login
    assert r.command("a3 SELECT INBOX", "a3")[-1].startswith("a3 BAD")
    # A synchronising literal gets a continuation; a LITERAL+ one does not.
    r.send("a4 LOGIN {%d}\r\n" % len(USER))
    assert r.raw_line().startswith(b"+ ")
    r.send(USER + " {%d+}\r\n%s\r\n" % (len(PASSWORD), PASSWORD))
    line = r.raw_line().decode()
    assert line.startswith("a4 OK"), line
    assert r.command("a5 CAPABILITY", "a5")[-1] == "a5 OK CAPABILITY completed"


def test_too_big_literal_is_refused(imap):
    r = Raw(start(imap))
    r.raw_line()
    r.send("a1 LOGIN {999999999999}\r\n")
    line = r.raw_line().decode()
    assert "TOOBIG" in line and line.startswith("a1 "), line
    assert r.command("a2 NOOP", "a2")[-1] == "a2 OK NOOP completed"


def test_idle_timeout_says_bye(imap):
    r = Raw(start(imap, imapd_idle_timeout="1s"))
    r.raw_line()
    r.s.settimeout(10)
    assert r.raw_line().startswith(b"* BYE Autologout")
    assert r.closed()


def test_connections_per_address_are_limited(imap):
    port = start(imap, imapd_max_sessions_per_ip=1)
    first = Raw(port)
    assert first.raw_line().startswith(b"* OK")
    second = Raw(port)
    assert second.raw_line().startswith(b"* BYE [UNAVAILABLE] too many connections from your address")
    assert first.command("a1 NOOP", "a1")[-1] == "a1 OK NOOP completed"


def test_sigterm_says_bye(imap):
    r = Raw(start(imap))
    r.raw_line()
    imap.stop_one("imapd")
    assert r.raw_line().startswith(b"* BYE server shutting down")


# ---- mailboxes: LIST, LSUB, CREATE, DELETE, RENAME, SUBSCRIBE, STATUS ----

def deliver(f, text, rcpt=USER):
    p = subprocess.run([binary("mda"), "-c", f.conf, "-d", rcpt], input=text.encode(),
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode()


def logged_in(f, **keys):
    c = client(f, **keys)
    assert c.login(USER, PASSWORD)[0] == "OK"
    return c


def listed(c, *args):
    """{name: attributes} from a LIST (or LSUB) answer."""
    typ, data = c.list(*args) if args else c.list()
    assert typ == "OK", data
    out = {}
    for line in data:
        m = re.match(rb'\(([^)]*)\) "/" (.*)$', line)
        assert m, line
        name = m.group(2).decode()
        out[name.strip('"')] = set(m.group(1).decode().split())
    return out


def test_a_new_account_has_the_special_use_folders(imap):
    c = logged_in(imap)
    boxes = listed(c)
    assert boxes["INBOX"] == {"\\HasNoChildren"}
    for name, use in (("Drafts", "\\Drafts"), ("Sent", "\\Sent"), ("Trash", "\\Trash"),
                      ("Junk", "\\Junk"), ("Archive", "\\Archive")):
        assert boxes[name] == {"\\HasNoChildren", use}, boxes
    typ, data = c.lsub()
    assert typ == "OK" and any(b'"Sent"' in line or line.endswith(b" Sent") for line in data), data
    typ, data = c.list('""', '""')
    assert data == [b'(\\Noselect) "/" ""']
    c.logout()


def test_create_rename_delete_and_children(imap):
    c = logged_in(imap)
    assert c.create("Projects/2026")[0] == "OK"
    boxes = listed(c)
    assert boxes["Projects/2026"] == {"\\HasNoChildren"}
    assert boxes["Projects"] == {"\\Noselect", "\\HasChildren"}, boxes  # RFC 3501 LIST: \NonExistent is LIST-EXTENDED's
    typ, data = c._simple_command("LIST", '()', '""', "Projects")
    assert c._untagged_response(typ, data, "LIST")[1] == [b'(\\NonExistent \\HasChildren) "/" "Projects"'], data
    assert c.create("Projects")[0] == "OK"
    assert listed(c)["Projects"] == {"\\HasChildren"}
    assert listed(c, '""', "Projects/%") == {"Projects/2026": {"\\HasNoChildren"}}
    assert set(listed(c, '""', "%")) >= {"INBOX", "Projects", "Sent"}
    assert "Projects/2026" not in listed(c, '""', "%")
    typ, data = c.create("Projects")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0]
    assert c.rename("Projects", "Work")[0] == "OK"
    boxes = listed(c)
    assert "Work/2026" in boxes and "Projects" not in boxes and "Projects/2026" not in boxes
    assert c.delete("Work/2026")[0] == "OK"
    assert listed(c)["Work"] == {"\\HasNoChildren"}
    typ, data = c.delete("Nowhere")
    assert typ == "NO" and b"NONEXISTENT" in data[0]
    typ, data = c.delete("INBOX")
    assert typ == "NO"
    c.logout()


def test_names_are_modified_utf7_on_the_wire_and_utf8_on_disk(imap):
    c = logged_in(imap)
    assert c.create("&AMQ-rger")[0] == "OK"  # "Ärger"
    assert "&AMQ-rger" in listed(c)
    assert os.path.isdir(os.path.join(maildir(imap), ".Ärger"))
    typ, data = c.create("bad&name")
    assert typ == "NO"
    c.logout()


def maildir(f):
    root = f.keys["mail_dir"]
    hits = [os.path.join(d, "") for d, dirs, files in os.walk(root) if "cur" in dirs and "tmp" in dirs
            and not os.path.basename(d).startswith(".")]
    assert len(hits) == 1, hits
    return hits[0]


def test_subscribe_and_unsubscribe(imap):
    c = logged_in(imap)
    assert c.create("Lists")[0] == "OK"
    assert c.subscribe("Lists")[0] == "OK"
    typ, data = c.lsub('""', "Lists")
    assert data == [b'() "/" Lists'] or data == [b'() "/" "Lists"'], data
    assert c.unsubscribe("Lists")[0] == "OK"
    typ, data = c.lsub('""', "Lists")
    assert data == [None], data
    c.logout()


def test_status_counts_messages(imap):
    c = logged_in(imap)
    typ, data = c.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY SIZE)")
    assert typ == "OK"
    assert re.search(rb"MESSAGES 0 UNSEEN 0 UIDNEXT 1 UIDVALIDITY \d+ SIZE 0", data[0]), data
    text = "From: a@example.org\nSubject: one\n\nhello\nworld\n"
    deliver(imap, text)
    deliver(imap, text)
    typ, data = c.status("INBOX", "(MESSAGES UNSEEN UIDNEXT SIZE RECENT)")
    size = len(text.replace("\n", "\r\n"))
    m = re.search(rb"MESSAGES 2 UNSEEN 2 UIDNEXT 3 SIZE (\d+) RECENT 2", data[0])
    assert m, data
    assert int(m.group(1)) >= 2 * size  # plus the trace headers ferry-mda adds
    typ, data = c.status("Nowhere", "(MESSAGES)")
    assert typ == "NO"
    c.logout()


# ---- selected state: SELECT, EXAMINE, FETCH, STORE, EXPUNGE, CLOSE, UNSELECT ----

MESSAGE = ("From: Alice <alice@example.org>\nTo: demo@example.test\nSubject: hello there\n"
           "Message-ID: <m1@example.org>\nDate: Fri, 27 Nov 2026 10:00:00 +0000\n\n"
           "first line\nsecond line\n")


def with_messages(f, n=2):
    for i in range(n):
        deliver(f, MESSAGE.replace("hello there", f"hello {i + 1}"))


def test_select_reports_the_mailbox(imap):
    with_messages(imap)
    c = logged_in(imap)
    typ, data = c.select("INBOX")
    assert typ == "OK" and data == [b"2"]
    assert c.untagged_responses["FLAGS"] == [b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft)"]
    assert int(c.untagged_responses["UIDVALIDITY"][0]) > 0
    assert c.untagged_responses["UIDNEXT"] == [b"3"]
    assert c.untagged_responses["RECENT"] == [b"2"]  # the first session to see them (RFC 3501 \\Recent)
    assert "HIGHESTMODSEQ" in c.untagged_responses
    typ, data = c.select("Nowhere")
    assert typ == "NO"
    # A failed SELECT leaves no mailbox selected.
    with pytest.raises(imaplib.IMAP4.error):
        c.fetch("1", "(FLAGS)")


def test_fetch_items_and_seen(imap):
    with_messages(imap)
    c = logged_in(imap)
    c.select("INBOX")
    typ, data = c.fetch("1:2", "(UID FLAGS RFC822.SIZE INTERNALDATE)")
    assert typ == "OK"
    stored = open(sorted(imap.mail(USER))[0], "rb").read()
    size = len(stored.replace(b"\n", b"\r\n"))
    assert re.match(rb'1 \(UID 1 FLAGS \(\\Recent\) RFC822.SIZE (\d+) INTERNALDATE "\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d \+0000"\)',
                    data[0]), data
    sizes = [int(re.search(rb"RFC822.SIZE (\d+)", d).group(1)) for d in data]
    assert size in sizes
    typ, data = c.fetch("1", "(ENVELOPE)")
    assert b'"hello 1"' in data[0] and b'(("Alice" NIL "alice" "example.org"))' in data[0], data
    typ, data = c.fetch("1", "(BODYSTRUCTURE)")
    assert b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit"' in data[0], data
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: hello 1\r\n\r\n", data
    assert c.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Recent))"]  # PEEK left it unseen
    typ, data = c.fetch("1", "(BODY[TEXT])")
    assert data[0][1] == b"first line\r\nsecond line\r\n"
    assert b"\\Seen" in data[1] or b"\\Seen" in data[0][0], data  # BODY[] sets \Seen and says so
    assert c.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Seen \\Recent))"]
    typ, data = c.fetch("2", "(BODY.PEEK[]<0.10>)")
    assert data[0][0].endswith(b"BODY[]<0> {10}") and len(data[0][1]) == 10
    typ, data = c.uid("FETCH", "2", "(FLAGS)")
    assert data == [b"2 (FLAGS (\\Recent) UID 2)"] or data == [b"2 (UID 2 FLAGS (\\Recent))"], data
    with pytest.raises(imaplib.IMAP4.error, match="invalid message sequence number"):
        c.fetch("3", "(FLAGS)")  # past EXISTS: BAD (RFC 9051 section 6.4.5)


def test_store_expunge_and_close(imap):
    with_messages(imap, 3)
    c = logged_in(imap)
    c.select("INBOX")
    typ, data = c.store("1", "+FLAGS", "(\\Flagged \\Deleted)")
    # The first session to select the folder holds its messages \Recent (RFC 3501 section 2.3.2).
    assert typ == "OK" and data == [b"1 (FLAGS (\\Flagged \\Deleted \\Recent))"], data
    typ, data = c.uid("STORE", "3", "+FLAGS.SILENT", "(\\Deleted)")
    assert typ == "OK" and data == [None], data
    typ, data = c.store("2", "FLAGS", "(\\Seen $Label1)")
    assert b"\\Seen" in data[0] and b"$Label1" in data[0], data
    # Another client sees the flags, which live in the file names as well.
    other = logged_in(imap)
    other.select("INBOX", readonly=True)
    assert other.fetch("2", "(FLAGS)")[1][0] in (b"2 (FLAGS (\\Seen $Label1))",)
    typ, data = other.store("2", "+FLAGS", "(\\Flagged)")
    assert typ == "NO"  # EXAMINE is read-only
    typ, data = c.expunge()
    assert typ == "OK" and data == [b"3", b"1"], data  # highest first, so the numbers stay right
    assert len(imap.mail(USER)) == 1
    assert other.noop()[0] == "OK"
    assert other.untagged_responses.get("EXPUNGE") == [b"3", b"1"], other.untagged_responses
    assert c.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert c.unselect()[0] == "OK" if hasattr(c, "unselect") else c._simple_command("UNSELECT")[0] == "OK"
    assert len(imap.mail(USER)) == 1  # UNSELECT does not expunge
    c.select("INBOX")
    assert c.close()[0] == "OK"
    assert len(imap.mail(USER)) == 0  # CLOSE does


def test_new_mail_is_seen_at_noop(imap):
    with_messages(imap, 1)
    c = logged_in(imap)
    assert c.select("INBOX")[1] == [b"1"]
    with_messages(imap, 1)
    c.untagged_responses.clear()
    c.noop()
    assert c.untagged_responses.get("EXISTS") == [b"2"], c.untagged_responses


def test_curl_fetches_a_message(imap):
    with_messages(imap, 1)
    port = start(imap)
    p = subprocess.run(["curl", "-s", "--max-time", "20", "-u", f"{USER}:{PASSWORD}",
                        f"imap://127.0.0.1:{port}/INBOX;UID=1"], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert b"Subject: hello 1\r\n" in p.stdout and p.stdout.endswith(b"second line\r\n"), p.stdout


# ---- APPEND, COPY, MOVE with UIDPLUS ----

def test_append_with_flags_and_date(imap):
    c = logged_in(imap)
    msg = b"From: me@example.test\r\nSubject: draft\r\n\r\nwork in progress\r\n"
    typ, data = c.append("Drafts", "(\\Draft \\Seen)", '"05-Jan-2026 10:20:30 +0000"', msg)
    assert typ == "OK"
    m = re.search(rb"\[APPENDUID (\d+) 1\]", data[0])
    assert m, data
    typ, data = c.status("Drafts", "(MESSAGES UIDVALIDITY)")
    assert f"UIDVALIDITY {m.group(1).decode()}".encode() in data[0] and b"MESSAGES 1" in data[0]
    c.select("Drafts")
    typ, data = c.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert b"\\Draft" in data[0][0] and b"\\Seen" in data[0][0]
    assert b'"05-Jan-2026 10:20:30 +0000"' in data[0][0], data
    assert data[0][1] == msg
    typ, data = c.append("Nowhere", None, None, msg)
    assert typ == "NO" and b"TRYCREATE" in data[0]


def test_copy_and_move_answer_copyuid(imap):
    with_messages(imap, 3)
    c = logged_in(imap)
    c.select("INBOX")
    c.store("1", "+FLAGS", "(\\Flagged)")
    typ, data = c.copy("1:2", "Archive")
    assert typ == "OK"
    m = re.search(rb"\[COPYUID (\d+) 1:2 1:2\]", data[0])
    assert m, data
    typ, data = c.uid("MOVE", "3", "Trash")
    assert typ == "OK"
    assert c.untagged_responses.get("EXPUNGE") == [b"3"], c.untagged_responses
    typ, data = c.status("INBOX", "(MESSAGES)")
    assert b"MESSAGES 2" in data[0]
    c.select("Archive")
    typ, data = c.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"\\Flagged" in data[0][0] and data[0][1] == b"Subject: hello 1\r\n\r\n", data
    c.select("Trash")
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: hello 3\r\n\r\n"



def test_copy_keeps_content_flags_keywords_and_date_and_each_copy_lives_on_its_own(imap):
    """A copied message is byte-identical, with its flags, keywords and INTERNALDATE; afterwards the
    copy and the original change and go independently (a flag on one is not on the other, expunging
    the original leaves the copy)."""
    with_messages(imap, 40)
    c = logged_in(imap)
    c.select("INBOX")
    c.store("2", "+FLAGS", "(\\Seen $Work)")
    typ, before = c.fetch("1:40", "(INTERNALDATE BODY.PEEK[])")
    assert typ == "OK"
    typ, data = c.copy("1:40", "Archive")
    assert typ == "OK" and re.search(rb"\[COPYUID \d+ 1:40 1:40\]", data[0]), data
    c.select("Archive")
    typ, after = c.fetch("1:40", "(INTERNALDATE BODY.PEEK[])")
    assert [x for x in after if isinstance(x, tuple)] == [x for x in before if isinstance(x, tuple)]
    typ, data = c.fetch("2", "(FLAGS)")
    assert b"\\Seen" in data[0] and b"$Work" in data[0], data
    c.store("1", "+FLAGS", "(\\Flagged)")
    c.select("INBOX")
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"\\Flagged" not in data[0], data
    c.store("1:40", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.select("Archive")
    typ, data = c.fetch("1:40", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    subjects = [x[1] for x in data if isinstance(x, tuple)]
    assert subjects == [f"Subject: hello {i}\r\n\r\n".encode() for i in range(1, 41)]


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M).group(1))


def test_search_body_streams_a_large_message(host):
    """SEARCH BODY and TEXT read a 20 MB message a chunk at a time: right answers, words split
    between two reads found, and the process's peak memory barely moves."""
    chunk = 64 * 1024  # imapd's read size; base64 lines of 76 characters hold 57 octets each

    def decoded_at(raw):
        return raw // 77 * 57 + raw % 77 * 3 // 4

    text = bytearray(b"".join(b"filler line %07d of the big attachment\n" % i for i in range(400000)))
    for k, word in ((3, b"Zebrafinch"), (150, b"Kingfisher")):
        at = decoded_at(chunk * k) - len(word) // 2  # straddles the k-th read of the part's body
        text[at:at + len(word)] = word
    text += b"the last words: Nightingale\n"
    body = base64.encodebytes(bytes(text))
    msg = (b"From: big@example.org\nTo: demo@example.test\nSubject: large\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nintro\n"
           b"--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n" + body + b"--b--\n")
    assert len(msg) > 20_000_000
    deliver(host, "From: small@example.org\nSubject: small\n\nnothing much\n")
    with open(os.path.join(host.maildir(USER), "new", "1700000000.big.mx.test"), "wb") as f:
        f.write(msg)
    c = client(host)
    c.login(USER, PASSWORD)
    assert c.select("INBOX")[1] == [b"2"]
    before = peak_rss_kib(host.pid("imapd"))
    for key, word, hits in (("BODY", "zebrafinch", [b"2"]), ("BODY", "KINGFISHER", [b"2"]),
                            ("TEXT", "nightingale", [b"2"]), ("BODY", "intro", [b"2"]),
                            ("BODY", "albatross", []), ("TEXT", "much", [b"1"]), ("TEXT", "LARGE", [b"2"])):
        typ, data = c.search(None, key, word)
        assert typ == "OK" and data[0].split() == hits, (key, word, data)
    grown = peak_rss_kib(host.pid("imapd")) - before
    # Holding the message, its decoded text and a folded copy would take some 50 MiB.
    assert grown < 8 * 1024, f"peak memory grew by {grown} KiB"
    c.logout()

# ---- IDLE ----

def idle_until(r, pattern, timeout=10):
    """Lines an IDLEing raw connection receives until one matches `pattern`."""
    r.s.settimeout(timeout)
    seen = []
    while True:
        seen.append(r.raw_line().decode())
        if re.search(pattern, seen[-1]):
            return seen


def test_idle_hears_a_delivery_through_smtpd(mailhost):
    port = start(mailhost)
    r = Raw(port)
    r.raw_line()
    assert r.command(f"a1 LOGIN {USER} {PASSWORD}", "a1")[-1].startswith("a1 OK")
    assert r.command("a2 SELECT INBOX", "a2")[-1].startswith("a2 OK")
    r.send("a3 IDLE\r\n")
    assert r.raw_line() == b"+ idling"
    with smtplib.SMTP("127.0.0.1", mailhost.port("smtp"), timeout=30) as s:
        s.sendmail("sender@example.org", [USER], MESSAGE)
    assert "* 1 EXISTS" in idle_until(r, r"^\* 1 EXISTS$", timeout=20)
    # Flags changed by another session arrive as FETCH while idling.
    other = logged_in(mailhost)
    other.select("INBOX")
    other.store("1", "+FLAGS", "(\\Flagged)")
    idle_until(r, r"^\* 1 FETCH \(FLAGS \(\\Flagged \\Recent\)\)$")  # this session heard of it first
    other.store("1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    idle_until(r, r"^\* 1 EXPUNGE$")
    r.send("DONE\r\n")
    assert idle_until(r, r"^a3 ")[-1] == "a3 OK IDLE terminated"
    assert r.command("a4 NOOP", "a4")[-1] == "a4 OK NOOP completed"


# ---- SEARCH ----

def test_search_keys(imap):
    deliver(imap, "From: Alice <alice@example.org>\nTo: demo@example.test\nSubject: quarterly report\n\n"
                  "numbers inside\n")
    deliver(imap, "From: Bob <bob@example.org>\nTo: demo@example.test\n"
                  "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\nX-Tag: blue\nMIME-Version: 1.0\n"
                  "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
                  + base64.b64encode("Schöne Grüße aus Köln\n".encode()).decode() + "\n")
    deliver(imap, "From: carol@example.org\nSubject: big\n\n" + "x" * 5000 + "\n")
    c = logged_in(imap)
    c.select("INBOX")
    c.store("1", "+FLAGS", "(\\Flagged)")
    c.store("2", "+FLAGS", "(\\Seen)")

    def search(*keys, uid=False):
        typ, data = c.uid("SEARCH", *keys) if uid else c.search(None, *keys)
        assert typ == "OK", data
        return data[0].decode().split()

    assert search("ALL") == ["1", "2", "3"]
    assert search("FLAGGED") == ["1"]
    assert search("UNSEEN") == ["1", "3"]
    assert search("NOT", "SEEN", "NOT", "FLAGGED") == ["3"]
    assert search("OR", "FLAGGED", "SEEN") == ["1", "2"]
    assert search("FROM", "bob") == ["2"]
    assert search("SUBJECT", "REPORT") == ["1"]  # case-insensitive
    assert search("HEADER", "X-Tag", "blue") == ["2"]
    assert search("HEADER", "X-Tag", '""') == ["2"]
    assert search("BODY", "inside") == ["1"]
    assert search("BODY", "nothere") == []
    assert search("LARGER", "4000") == ["3"]
    assert search("SMALLER", "4000") == ["1", "2"]
    assert search("2:3", "UNSEEN") == ["3"]
    assert search("UID", "2:*", uid=True) == ["2", "3"]
    assert search("SINCE", "1-Jan-2000") == ["1", "2", "3"]
    assert search("BEFORE", "1-Jan-2000") == []
    # Decoded text: a base64 body in UTF-8 and an encoded-word subject, sent as literals.
    r = Raw(start(imap))
    r.raw_line()
    r.command(f"a1 LOGIN {USER} {PASSWORD}", "a1")
    r.command("a2 SELECT INBOX", "a2")
    for key, word in (("BODY", "KÖLN"), ("SUBJECT", "grüße")):
        data = word.encode()
        r.send(f"a3 SEARCH CHARSET UTF-8 {key} {{{len(data)}+}}\r\n".encode() + data)
        lines = r.command("", "a3")
        assert lines[-1].startswith("a3 OK") and "* SEARCH 2" in lines, lines
