"""ferry-mda runs each account's Sieve scripts at delivery: folders seen over IMAP, discard, reject with a
bounce, flags, editheader, failing scripts, site scripts, junk filing, a kill mid-delivery, and -d mode."""
import glob
import imaplib
import os
import re
import smtplib
import subprocess
import uuid

import pytest

from ferry_harness import binary, wait_until
from test_mda_exactly_once import Lmtp, fresh_qid

DEMO = "demo@example.test"
OTHER = "other@example.test"
PASSWORD = "demo-secret"

LISTS = 'require ["fileinto", "mailbox"];\nif header :contains "subject" "[barlist]" { fileinto :create "Lists"; stop; }\n'


@pytest.fixture
def sieve(host):
    host.add_account(OTHER, "pw")
    return host


def put_script(f, address, text, name="rules"):
    """What ferry-managesieve's PUTSCRIPT and SETACTIVE leave on disk (ferry-mailstore(5))."""
    d = os.path.join(f.maildir(address), "sieve")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name + ".sieve")
    with open(path + ".tmp", "w") as out:
        out.write(text)
    os.rename(path + ".tmp", path)
    link = os.path.join(d, "active")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(name + ".sieve", link)


def folder_files(f, address, folder="INBOX"):
    md = f.maildir(address) if folder == "INBOX" else os.path.join(f.maildir(address), "." + folder.replace("/", "."))
    return sorted(glob.glob(os.path.join(md, "new", "*")) + glob.glob(os.path.join(md, "cur", "*")))


def with_token(paths, tok):
    return [p for p in paths if tok.encode() in open(p, "rb").read()]


def smtp_send(f, sender, rcpts, subject, tok, extra=""):
    msg = f"From: {sender}\r\nTo: {rcpts[0]}\r\nSubject: {subject}\r\n{extra}\r\nbody {tok}\r\n"
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.sendmail(sender, rcpts, msg)


def lmtp(f, rcpts, msg, sender="a@outside.test"):
    c = Lmtp(f)
    try:
        assert c.cmd("LHLO qmgr.test")[0] == 250
        assert c.cmd(f"MAIL FROM:<{sender}>")[0] == 250
        for r in rcpts:
            assert c.cmd(f"RCPT TO:<{r}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.s.sendall(msg.encode() + b".\r\n")
        return [c.reply() for _ in rcpts]
    finally:
        c.close()


def message(tok, subject="hello", extra="", qid=None):
    received = (f"Received: from client.test (client.test [127.0.0.1])\r\n"
                f"\tby mx.test (ferry) with ESMTP id {qid};\r\n\tFri, 27 Nov 2026 12:00:00 +0000\r\n") if qid else ""
    return received + f"{extra}From: a@outside.test\r\nSubject: {subject}\r\n\r\nbody {tok}\r\n"


def test_fileinto_create_puts_the_message_in_a_new_folder_an_imap_client_sees(sieve):
    sieve.start("mda", "qmgr", "smtpd", "imapd")
    put_script(sieve, DEMO, LISTS)
    tok, plain = uuid.uuid4().hex, uuid.uuid4().hex
    smtp_send(sieve, OTHER, [DEMO], "[barlist] news", tok)
    smtp_send(sieve, OTHER, [DEMO], "something else", plain)
    wait_until(lambda: with_token(folder_files(sieve, DEMO, "Lists"), tok) and with_token(folder_files(sieve, DEMO), plain),
               what="both delivered")
    assert not with_token(folder_files(sieve, DEMO), tok)
    im = imaplib.IMAP4("127.0.0.1", sieve.port("imap"))
    try:
        im.login(DEMO, PASSWORD)
        typ, listing = im.list()
        assert typ == "OK" and any(b'"Lists"' in l or l.endswith(b" Lists") for l in listing), listing
        typ, subs = im.lsub()
        assert any(b"Lists" in l for l in subs), subs
        typ, data = im.select("Lists")
        assert typ == "OK" and int(data[0]) == 1
        typ, found = im.search(None, "BODY", tok)
        assert found[0].split() == [b"1"]
        typ, data = im.select("INBOX")
        typ, found = im.search(None, "BODY", tok)
        assert found[0] == b""
        typ, found = im.search(None, "BODY", plain)
        assert len(found[0].split()) == 1
    finally:
        im.logout()


def test_discard_stores_nothing_and_answers_250(sieve):
    sieve.start("mda")
    put_script(sieve, DEMO, 'if header :contains "subject" "spam" { discard; }\n')
    tok = uuid.uuid4().hex
    [(code, text)] = lmtp(sieve, [DEMO], message(tok, "buy spam now"))
    assert code == 250 and "discarded" in text, text
    assert with_token(sieve.mail(DEMO), tok) == []
    sieve.wait_log("mda", rf"to=<{DEMO}> discarded by Sieve")
    # The other recipient of the same message is not touched by demo's script.
    tok2 = uuid.uuid4().hex
    replies = lmtp(sieve, [DEMO, OTHER], message(tok2, "buy spam now"))
    assert [c for c, _ in replies] == [250, 250]
    assert with_token(sieve.mail(DEMO), tok2) == [] and len(with_token(sieve.mail(OTHER), tok2)) == 1


def test_reject_is_a_550_over_lmtp_and_a_bounce_to_the_sender(sieve):
    sieve.start("mda", "qmgr", "smtpd")
    put_script(sieve, DEMO, 'require "reject";\nif header :contains "subject" "offer" { reject "I do not want offers"; }\n')
    tok = uuid.uuid4().hex
    [(code, text)] = lmtp(sieve, [DEMO], message(tok, "an offer"))
    assert code == 550 and text.startswith("5.7.1") and "I do not want offers" in text, (code, text)
    # End to end: the sender (a local account) gets a bounce that carries the reason.
    tok2 = uuid.uuid4().hex
    smtp_send(sieve, OTHER, [DEMO], "another offer", tok2)
    wait_until(lambda: any(b"I do not want offers" in open(p, "rb").read() for p in sieve.mail(OTHER)),
               timeout=30, what="bounce to the sender")
    assert with_token(sieve.mail(DEMO), tok2) == []


def test_flags_and_addheader_are_stored_with_the_copy(sieve):
    sieve.start("mda")
    put_script(sieve, DEMO, 'require ["imap4flags", "editheader", "fileinto"];\n'
                            'addheader "X-Sieve-Seen" "yes";\ndeleteheader "X-Drop";\n'
                            'setflag "\\\\Seen \\\\Flagged $Work";\nkeep;\n'
                            'fileinto :flags "\\\\Answered" "Archive";\n')
    tok = uuid.uuid4().hex
    [(code, text)] = lmtp(sieve, [DEMO], message(tok, extra="X-Drop: gone\r\n"))
    assert code == 250, text
    [inbox] = with_token(folder_files(sieve, DEMO), tok)
    assert "/cur/" in inbox and inbox.endswith(":2,FS"), inbox
    data = open(inbox, "rb").read()
    assert data.startswith(b"Return-Path: <a@outside.test>\nDelivered-To: demo@example.test\nX-Sieve-Seen: yes\n"), data
    assert b"X-Drop" not in data and data.endswith(f"\n\nbody {tok}\n".encode())
    [archived] = with_token(folder_files(sieve, DEMO, "Archive"), tok)
    assert archived.endswith(":2,R"), archived
    # Each copy's name carries its own size: the edited header counts.
    size = int(re.search(r",S=(\d+)", archived).group(1))
    assert size == os.path.getsize(archived)


def test_a_broken_script_keeps_mail_in_inbox_and_tells_the_user_once(sieve):
    sieve.start("mda")
    put_script(sieve, DEMO, 'require "fileinto";\nif header :is "x" "y" {\n  fileinto "A"\n}\n', name="broken")
    toks = [uuid.uuid4().hex for _ in range(2)]
    for tok in toks:
        [(code, _)] = lmtp(sieve, [DEMO], message(tok))
        assert code == 250
    for tok in toks:
        assert len(with_token(folder_files(sieve, DEMO), tok)) == 1
    notices = [p for p in folder_files(sieve, DEMO) if b"Your Sieve script broken failed: line 4" in open(p, "rb").read()]
    assert len(notices) == 1, [open(p, "rb").read() for p in folder_files(sieve, DEMO)]
    sieve.wait_log("mda", r"Sieve script .*broken.sieve failed, the message is kept: line 4")
    # A changed script that still fails is worth a second notice; a good one none.
    put_script(sieve, DEMO, 'require "fileinto";\nstop\n', name="broken")
    lmtp(sieve, [DEMO], message(uuid.uuid4().hex))
    notices = [p for p in folder_files(sieve, DEMO) if b"Your Sieve script broken failed" in open(p, "rb").read()]
    assert len(notices) == 2


def test_a_script_over_its_run_limits_keeps_mail(sieve):
    sieve.set(sieve_max_redirects="1")
    sieve.start("mda")
    put_script(sieve, DEMO, 'redirect "a@example.net";\nredirect "b@example.net";\n')
    tok = uuid.uuid4().hex
    [(code, _)] = lmtp(sieve, [DEMO], message(tok))
    assert code == 250
    assert len(with_token(folder_files(sieve, DEMO), tok)) == 1
    sieve.wait_log("mda", r"failed, the message is kept: .*redirect")


def test_site_before_and_after_scripts_run_around_the_users(sieve):
    before = os.path.join(sieve.root, "sieve-before")
    after = os.path.join(sieve.root, "sieve-after")
    os.makedirs(os.path.join(before, "example.test"))
    os.makedirs(after)
    with open(os.path.join(before, "10-tag.sieve"), "w") as f:
        f.write('require "editheader";\naddheader "X-Site" "before";\n')
    with open(os.path.join(before, "example.test", "20-domain.sieve"), "w") as f:
        f.write('require "fileinto";\nif header :contains "subject" "domain" { fileinto "Archive"; stop; }\n')
    with open(os.path.join(after, "90-after.sieve"), "w") as f:
        f.write('require "fileinto";\nif header :contains "x-site" "before" { fileinto "Drafts"; }\n')
    sieve.set(sieve_before=before, sieve_after=after)
    sieve.start("mda")
    put_script(sieve, DEMO, 'require "fileinto";\nif header :is "x-site" "before" { fileinto "Trash"; }\n')
    tok = uuid.uuid4().hex
    assert lmtp(sieve, [DEMO], message(tok))[0][0] == 250
    # The user's script saw the site's header; the after script ran too; no implicit keep.
    assert len(with_token(folder_files(sieve, DEMO, "Trash"), tok)) == 1
    assert len(with_token(folder_files(sieve, DEMO, "Drafts"), tok)) == 1
    assert with_token(folder_files(sieve, DEMO), tok) == []
    # The domain's before script stops the sequence.
    tok2 = uuid.uuid4().hex
    assert lmtp(sieve, [DEMO], message(tok2, "for the domain"))[0][0] == 250
    assert len(with_token(folder_files(sieve, DEMO, "Archive"), tok2)) == 1
    assert with_token(folder_files(sieve, DEMO, "Trash") + folder_files(sieve, DEMO, "Drafts"), tok2) == []


def test_a_high_spam_score_files_the_implicit_keep_into_junk(sieve):
    scores = os.path.join(sieve.root, "junk-scores")
    with open(scores, "w") as f:
        f.write("example.test 50\n")
    sieve.start("mda")
    low, high = uuid.uuid4().hex, uuid.uuid4().hex
    lmtp(sieve, [DEMO], message(low, extra="X-Spam-Score: 4.9\r\n"))
    lmtp(sieve, [DEMO], message(high, extra="X-Spam-Score: 1000.0\r\nX-Spam-Score: 0\r\n"))
    assert len(with_token(folder_files(sieve, DEMO), low)) == 1
    assert len(with_token(folder_files(sieve, DEMO, "Junk"), high)) == 1
    assert with_token(folder_files(sieve, DEMO), high) == []
    # An explicit keep in the user's script wins.
    put_script(sieve, DEMO, 'if header :contains "subject" "keep me" { keep; }\n')
    kept = uuid.uuid4().hex
    lmtp(sieve, [DEMO], message(kept, "keep me", extra="X-Spam-Score: 9\r\n"))
    assert len(with_token(folder_files(sieve, DEMO), kept)) == 1
    # The domain's threshold from spam_junk_score_map; 0 turns it off.
    sieve.stop_one("mda")
    sieve.set(spam_junk_score_map=scores)
    sieve.start("mda")
    t = uuid.uuid4().hex
    lmtp(sieve, [DEMO], message(t, extra="X-Spam-Score: 20\r\n"))
    assert len(with_token(folder_files(sieve, DEMO), t)) == 1
    sieve.stop_one("mda")
    sieve.set(spam_junk_score_map="", spam_junk_score="0")
    sieve.start("mda")
    t = uuid.uuid4().hex
    lmtp(sieve, [DEMO], message(t, extra="X-Spam-Score: 1000\r\n"))
    assert len(with_token(folder_files(sieve, DEMO), t)) == 1


@pytest.mark.parametrize("point", ["mda-after-intent", "mda-after-tmp", "mda-after-link", "mda-before-reply"])
def test_killed_mid_delivery_with_fileinto_each_folder_gets_one_copy(sieve, point):
    sieve.set(**{"mda.test_pause_at": point})
    sieve.start("mda", "qmgr", "smtpd")
    put_script(sieve, DEMO, 'require "fileinto";\nfileinto "Archive";\nkeep;\n')
    tok = uuid.uuid4().hex
    smtp_send(sieve, OTHER, [DEMO], "two folders", tok)
    sieve.wait_log("mda", rf"(\w+): paused at {point}")
    sieve.kill("mda")
    sieve.set(**{"mda.test_pause_at": ""})
    sieve.start("mda")
    wait_until(lambda: sieve.spool_ids("queue") == [] and sieve.spool_ids("state") == [], timeout=30,
               what="queue emptied")
    assert len(with_token(folder_files(sieve, DEMO, "Archive"), tok)) == 1, sieve.log("mda")
    assert len(with_token(folder_files(sieve, DEMO), tok)) == 1, sieve.log("mda")
    # Both copies share the base name the delivery record names.
    names = [re.split(r"[,:]", os.path.basename(p))[0]
             for p in with_token(folder_files(sieve, DEMO, "Archive") + folder_files(sieve, DEMO), tok)]
    assert names[0] == names[1]


def test_lda_mode_runs_the_script_too(sieve):
    put_script(sieve, DEMO, 'require ["fileinto", "reject", "mailbox"];\n'
                            'if header :contains "subject" "[barlist]" { fileinto :create "Lists/Bar"; stop; }\n'
                            'if header :contains "subject" "nope" { reject "go away"; }\n')
    tok = uuid.uuid4().hex
    p = subprocess.run([binary("mda"), "-c", sieve.conf, "-d", DEMO, "-f", "a@outside.test"],
                       input=message(tok, "[barlist] x").encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert len(with_token(folder_files(sieve, DEMO, "Lists/Bar"), tok)) == 1, p.stderr
    assert with_token(folder_files(sieve, DEMO), tok) == []
    p = subprocess.run([binary("mda"), "-c", sieve.conf, "-d", DEMO, "-f", "a@outside.test"],
                       input=message(tok, "nope").encode(), capture_output=True, timeout=30)
    assert p.returncode == 77 and b"go away" in p.stderr, p


def test_without_a_script_delivery_is_unchanged(sieve):
    sieve.start("mda")
    tok = uuid.uuid4().hex
    [(code, text)] = lmtp(sieve, [DEMO], message(tok))
    assert code == 250
    [path] = with_token(sieve.mail(DEMO), tok)
    assert "/new/" in path
    assert not re.search(r"sieve:", sieve.log("mda"))


def test_a_script_uploaded_over_managesieve_files_smtp_mail_an_imap_client_sees(sieve):
    """The administrator's check: upload and activate over ManageSieve, send over SMTP, look over IMAP."""
    from test_managesieve import Sieve
    sieve.tls()
    sieve.start("mda", "qmgr", "smtpd", "imapd", "managesieve")
    c = Sieve(sieve.port("sieve"))
    c.starttls()
    assert c.login(DEMO, PASSWORD).startswith("OK")
    assert c.cmd('PUTSCRIPT "rules"', LISTS)[0].startswith("OK")
    assert c.cmd('SETACTIVE "rules"')[0].startswith("OK")
    c.cmd("LOGOUT")
    tok = uuid.uuid4().hex
    smtp_send(sieve, OTHER, [DEMO], "[barlist] via managesieve", tok)
    wait_until(lambda: with_token(folder_files(sieve, DEMO, "Lists"), tok), what="filed into Lists")
    im = imaplib.IMAP4("127.0.0.1", sieve.port("imap"))
    try:
        im.login(DEMO, PASSWORD)
        assert im.select("Lists")[0] == "OK"
        assert len(im.search(None, "BODY", tok)[1][0].split()) == 1
        im.select("INBOX")
        assert im.search(None, "BODY", tok)[1][0] == b""
    finally:
        im.logout()


def test_a_redirect_is_handed_to_the_sender_and_kept_only_when_it_fails(sieve):
    sieve.start("mda")
    put_script(sieve, DEMO, 'require ["copy", "fileinto"];\n'
                            'if header :contains "subject" "plain" { redirect "away@example.net"; }\n'
                            'if header :contains "subject" "copied" { redirect :copy "away@example.net"; fileinto "Archive"; }\n')
    tok = uuid.uuid4().hex
    assert lmtp(sieve, [DEMO], message(tok, "plain"))[0][0] == 250
    m = sieve.wait_log("mda", r"to=<demo@example.test> (redirected to <away@example.net>|redirect to <away@example.net> failed, the message is kept)")
    kept = with_token(folder_files(sieve, DEMO), tok)
    # Without :copy the message stays only when the redirect could not be queued.
    assert len(kept) == (0 if m.group(1).startswith("redirected") else 1), sieve.log("mda")
    tok2 = uuid.uuid4().hex
    assert lmtp(sieve, [DEMO], message(tok2, "copied"))[0][0] == 250
    # With :copy a failed redirect changes nothing: the fileinto stands and INBOX gets nothing.
    assert len(with_token(folder_files(sieve, DEMO, "Archive"), tok2)) == 1
    assert with_token(folder_files(sieve, DEMO), tok2) == []


def test_a_script_is_compiled_once_until_its_file_changes(sieve):
    sieve.start("mda")
    put_script(sieve, DEMO, 'require "fileinto";\nfileinto "Archive";\n')
    compiled = lambda: len(re.findall(r"sieve: compiled .*/sieve/active", sieve.log("mda")))
    for _ in range(3):
        assert lmtp(sieve, [DEMO], message(uuid.uuid4().hex))[0][0] == 250
    assert compiled() == 1
    # ManageSieve replaces a script by a rename: a new file, compiled again, and obeyed at once.
    put_script(sieve, DEMO, 'require "fileinto";\nfileinto "Trash";\n')
    tok = uuid.uuid4().hex
    assert lmtp(sieve, [DEMO], message(tok))[0][0] == 250
    assert compiled() == 2
    assert len(with_token(folder_files(sieve, DEMO, "Trash"), tok)) == 1


def test_a_script_nested_past_sieve_max_nesting_keeps_mail(sieve):
    sieve.set(sieve_max_nesting="2")
    sieve.start("mda")
    put_script(sieve, DEMO, 'require "fileinto";\nif true {\n  if true {\n    if true { fileinto "Archive"; }\n  }\n}\n')
    tok = uuid.uuid4().hex
    [(code, _)] = lmtp(sieve, [DEMO], message(tok))
    assert code == 250
    assert len(with_token(folder_files(sieve, DEMO), tok)) == 1
    assert not with_token(folder_files(sieve, DEMO, "Archive"), tok)
    sieve.wait_log("mda", r"failed, the message is kept: line 4, column \d+: nested deeper than 2")
