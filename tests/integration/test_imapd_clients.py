"""ferry-imapd with the IMAP clients people run: mbsync (isync) both ways, mutt, curl and fetchmail."""
import fcntl
import glob
import imaplib
import os
import pty
import re
import shutil
import struct
import subprocess
import termios
import threading
import time

import pytest

from ferry_harness import binary

USER = "demo@example.test"
PASSWORD = "demo-secret"
LETTER = {"\\Seen": "S", "\\Flagged": "F", "\\Answered": "R", "\\Deleted": "T", "\\Draft": "D"}


def need(program):
    path = shutil.which(program)
    if not path:
        pytest.skip(f"{program} is not installed (./dev installs it from its PACKAGES list)")
    return path


@pytest.fixture
def imap(host):
    """host with a certificate and ferry-imapd on imap and imaps; host.cert names the certificate."""
    host.cert, _ = host.tls()
    host.set(imapd_tls_listen="127.0.0.1:0")
    host.start("imapd")
    return host


def login(f):
    c = imaplib.IMAP4("127.0.0.1", f.port("imap"), timeout=30)
    assert c.login(USER, PASSWORD)[0] == "OK"
    return c


def deliver(f, text):
    p = subprocess.run([binary("mda"), "-c", f.conf, "-d", USER], input=text.encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode()


def message(i):
    """Message number i of the mailbox: every tenth a MIME multipart, some with 8-bit text, a few large."""
    head = (f"From: Sender {i} <s{i}@example.org>\nTo: {USER}\nSubject: message {i}\n"
            f"Message-ID: <{i}@fill.test>\nDate: Fri, 27 Nov 2026 10:{i // 60 % 60:02d}:{i % 60:02d} +0000\n")
    if i % 10 == 3:
        return (head + 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\npreamble\n--b\n'
                "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                f"Grüße {i}\n--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
                "AAECAwQFBgcICQ==\n--b--\n").encode()
    body = "".join(f"line {n} of {i}   \n" for n in range(i % 7 + 1))
    if i % 100 == 42:
        body += ("x" * 76 + "\n") * 2000  # about 150 KB
    if i % 17 == 0:
        body += "From the start of a line\n.\n..dots\n"
    return (head + "\n" + body).encode()


def fill(f, count):
    """`count` messages written into INBOX's Maildir as another Maildir writer would (UIDs come at the
    next sync, in mtime order); returns {message-id: bytes as stored}."""
    md = f.maildir(USER)
    os.makedirs(os.path.join(md, "new"), exist_ok=True)
    out = {}
    base = int(time.time()) - count - 10
    for i in range(1, count + 1):
        data = message(i)
        crlf = len(data) + data.count(b"\n")
        path = os.path.join(md, "new", f"{base + i}.M{i}P{os.getpid()}.fill,S={len(data)},W={crlf}")
        with open(path, "wb") as fh:
            fh.write(data)
        os.utime(path, (base + i, base + i))
        out[f"<{i}@fill.test>"] = data
    return out


def msgid(data):
    m = re.search(rb"^Message-ID: (<[^>]+>)\r?$", data, re.M | re.I)
    return m.group(1).decode() if m else None


def strip_tuid(data):
    """mbsync may add an X-TUID header to find a message it stored; the rest must be byte for byte."""
    return re.sub(rb"^X-TUID: \S+\r?\n", b"", data, flags=re.M)


def near_files(near):
    """{message-id: (path, flag letters)} of mbsync's Maildir copy of INBOX."""
    out = {}
    for path in glob.glob(os.path.join(near, "INBOX", "new", "*")) + glob.glob(os.path.join(near, "INBOX", "cur", "*")):
        with open(path, "rb") as fh:
            mid = msgid(fh.read(64 * 1024))
        flags = path.rsplit(":2,", 1)[1] if ":2," in path else ""
        assert mid not in out, f"two copies of {mid}: {out.get(mid)} and {path}"
        out[mid] = (path, "".join(sorted(flags)))
    return out


def server_view(f):
    """{message-id: (uid, flag letters)} as a fresh imaplib session sees INBOX."""
    c = login(f)
    typ, data = c.select("INBOX")
    assert typ == "OK"
    out = {}
    if int(data[0]) > 0:
        typ, data = c.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        assert typ == "OK"
        for item in data:
            if not isinstance(item, tuple):
                continue
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()
            out[msgid(item[1])] = (uid, "".join(sorted(LETTER[x] for x in flags if x in LETTER)))
    c.logout()
    return out


def server_files(f):
    """{message-id: flag letters in the file name} of the server's INBOX Maildir."""
    out = {}
    for path in glob.glob(os.path.join(f.maildir(USER), "new", "*")) + glob.glob(os.path.join(f.maildir(USER), "cur", "*")):
        with open(path, "rb") as fh:
            mid = msgid(fh.read(64 * 1024))
        out[mid] = "".join(sorted(path.rsplit(":2,", 1)[1])) if ":2," in path else ""
    return out


class Mbsync:
    """mbsync with one channel: ferry-imapd's INBOX (or every folder) over imaps (the far side) and a
    Maildir (the near side)."""

    def __init__(self, f, every_folder=False):
        self.dir = os.path.join(f.root, "mbsync")
        self.near = os.path.join(self.dir, "near")
        os.makedirs(self.near)
        self.rc = os.path.join(self.dir, "mbsyncrc")
        with open(self.rc, "w") as fh:
            fh.write(f"""IMAPAccount ferry
Host 127.0.0.1
Port {f.port("imaps")}
User {USER}
Pass {PASSWORD}
SSLType IMAPS
CertificateFile {f.cert}
PipelineDepth 32

IMAPStore far
Account ferry

MaildirStore near
Path {self.near}/
Inbox {self.near}/INBOX
SubFolders Verbatim

Channel inbox
Far :far:
Near :near:
Patterns {"*" if every_folder else "INBOX"}
Create Both
CopyArrivalDate yes
Expunge Both
SyncState *
""")

    def run(self):
        p = subprocess.run([need("mbsync"), "-c", self.rc, "-V", "inbox"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        return p.stdout + p.stderr


def rename_flags(path, flags):
    """Renames a near-side Maildir file to carry `flags` (as a mail reader does)."""
    head = path.rsplit(":2,", 1)[0]
    new = os.path.join(os.path.dirname(os.path.dirname(head)), "cur", os.path.basename(head)) + ":2," + "".join(sorted(flags))
    os.rename(path, new)


def test_mbsync_syncs_a_thousand_messages_both_ways(imap):
    need("mbsync")
    sent = fill(imap, 1000)
    mb = Mbsync(imap)

    # 1. far -> near: every message arrives whole, byte for byte.
    mb.run()
    near = near_files(mb.near)
    assert set(near) == set(sent), (len(near), len(sent))
    for mid, (path, flags) in near.items():
        with open(path, "rb") as fh:
            assert strip_tuid(fh.read()) == sent[mid], f"{mid} differs in {path}"
        assert flags == "", (mid, flags)
    before = server_view(imap)
    assert sorted(u for u, _ in before.values()) == list(range(1, 1001))

    # 2. near -> far: flags set and cleared, files removed, messages marked deleted.
    ids = sorted(sent, key=lambda m: int(m[1:].split("@")[0]))
    flagged, seen, answered, removed, trashed = ids[0:50], ids[40:140], ids[200:210], ids[300:330], ids[400:420]
    for mid in ids:
        path, _ = near[mid]
        letters = set()
        if mid in flagged:
            letters.add("F")
        if mid in seen:
            letters.add("S")
        if mid in answered:
            letters |= {"R", "S"}
        if mid in trashed:
            letters.add("T")
        if mid in removed:
            os.unlink(path)
        elif letters:
            rename_flags(path, letters)
    mb.run()

    def expected(mid):
        letters = set()
        if mid in flagged:
            letters.add("F")
        if mid in seen or mid in answered:
            letters.add("S")
        if mid in answered:
            letters.add("R")
        return "".join(sorted(letters))

    gone = set(removed) | set(trashed)
    view = server_view(imap)
    assert set(view) == set(sent) - gone, sorted(set(view) ^ (set(sent) - gone))[:10]
    for mid, (uid, flags) in view.items():
        assert uid == before[mid][0], (mid, uid, before[mid])  # a message keeps its UID
        assert flags == expected(mid), (mid, flags, expected(mid))
    files = server_files(imap)
    assert set(files) == set(view)
    assert all(files[mid] == expected(mid) for mid in files), [(m, files[m]) for m in files if files[m] != expected(m)][:5]

    # 3. far -> near: flags changed and a message expunged over IMAP, a delivery through ferry-mda.
    c = login(imap)
    c.select("INBOX")
    uid_of = {mid: uid for mid, (uid, _) in view.items()}
    survivors = sorted(view, key=lambda m: uid_of[m])
    c.uid("STORE", ",".join(str(uid_of[m]) for m in survivors[500:520]), "+FLAGS", "(\\Flagged \\Answered)")
    c.uid("STORE", ",".join(str(uid_of[m]) for m in survivors[0:10]), "-FLAGS", "(\\Flagged)")
    expunged = survivors[600:605]
    c.uid("STORE", ",".join(str(uid_of[m]) for m in expunged), "+FLAGS", "(\\Deleted)")
    assert c.expunge()[0] == "OK"
    c.logout()
    late = (f"From: late@example.org\nTo: {USER}\nSubject: late\nMessage-ID: <late@fill.test>\n\n"
            "delivered after the first sync\n")
    deliver(imap, late)
    mb.run()
    near = near_files(mb.near)
    view = server_view(imap)
    assert set(near) == set(view), sorted(set(near) ^ set(view))[:10]
    assert not set(expunged) & set(near)
    for mid, (uid, flags) in view.items():
        assert near[mid][1] == flags, (mid, near[mid], flags)
    assert "F" in view[survivors[510]][1] and "R" in view[survivors[510]][1]
    assert "F" not in view[survivors[5]][1]
    with open(near["<late@fill.test>"][0], "rb") as fh:
        got = strip_tuid(fh.read())
    stored = [p for p in imap.mail(USER) if b"<late@fill.test>" in open(p, "rb").read()]
    assert len(stored) == 1 and got == open(stored[0], "rb").read()

    # 4. Nothing left to do: a further run changes neither side.
    mb.run()
    assert near_files(mb.near) == near and server_view(imap) == view


def near_message(near, folder, name, data, mtime):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(near, folder, sub), exist_ok=True)
    path = os.path.join(near, folder, "cur", name)
    with open(path, "wb") as fh:
        fh.write(data)
    os.utime(path, (mtime, mtime))


def test_mbsync_syncs_every_folder_and_creates_new_ones_on_both_sides(imap):
    c = login(imap)
    assert c.create("Work/Reports")[0] == "OK"  # its parent "Work" does not exist: LIST says \Noselect
    report = b"From: boss@example.org\r\nSubject: report\r\nMessage-ID: <report@example.org>\r\n\r\nfigures\r\n"
    assert c.append("Work/Reports", "(\\Seen)", '"05-Jan-2026 10:20:30 +0000"', report)[0] == "OK"
    mb = Mbsync(imap, every_folder=True)
    mb.run()
    got = glob.glob(os.path.join(mb.near, "Work", "Reports", "cur", "*"))
    assert len(got) == 1 and got[0].endswith(":2,S"), got
    assert strip_tuid(open(got[0], "rb").read()) == report.replace(b"\r\n", b"\n")
    assert int(os.stat(got[0]).st_mtime) == 1767608430  # the INTERNALDATE became the arrival date
    assert not os.path.exists(os.path.join(mb.near, "Work", "cur"))  # no folder made of the \Noselect parent

    # A folder and messages made on the near side are created and appended on the server.
    draft = b"From: me@example.test\nSubject: plan\nMessage-ID: <plan@example.test>\n\nthe plan\n"
    near_message(mb.near, "Projects/2026", "1767000000.near1.host:2,FS", draft, 1767000000)
    note = b"From: me@example.test\nSubject: note\nMessage-ID: <note@example.test>\n\nnew in the inbox\n"
    near_message(mb.near, "INBOX", "1767000001.near2.host:2,D", note, 1767000001)
    mb.run()
    boxes = [line.decode() for line in c.list()[1]]
    assert any(line.endswith('"Projects/2026"') or line.endswith(" Projects/2026") for line in boxes), boxes
    for folder, data, flags, date in (("Projects/2026", draft, "\\Flagged \\Seen", "29-Dec-2025 09:20:00 +0000"),
                                      ("INBOX", note, "\\Draft", "29-Dec-2025 09:20:01 +0000")):
        typ, sel = c.select(folder)
        assert typ == "OK" and sel == [b"1"], (folder, sel)
        typ, data_ = c.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[])")
        assert strip_tuid(data_[0][1]) == data.replace(b"\n", b"\r\n"), data_
        assert f"FLAGS ({flags})".encode() in data_[0][0] and f'"{date}"'.encode() in data_[0][0], data_
    c.logout()


# ---- mutt ----

def run_on_pty(argv, timeout, env):
    """Runs a full-screen program on a 24x80 pseudo-terminal, draining what it draws; its exit code."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    screen = []

    def drain():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            screen.append(data)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise AssertionError("mutt did not finish: " + b"".join(screen)[-2000:].decode("latin-1"))
    finally:
        os.close(master)
    return rc, b"".join(screen)


def test_mutt_reads_a_message_and_flags_it(imap):
    mutt = need("mutt")
    c = login(imap)
    assert c.create("Mutt")[0] == "OK"
    text = (b"From: Alice <alice@example.org>\r\nTo: demo@example.test\r\nSubject: for mutt\r\n"
            b"Message-ID: <mutt@example.org>\r\n\r\nread me in batch mode\r\nsecond line\r\n")
    assert c.append("Mutt", None, None, text)[0] == "OK"
    out = os.path.join(imap.root, "mutt.out")
    rc_file = os.path.join(imap.root, "muttrc")
    with open(rc_file, "w") as fh:
        fh.write(f"""set imap_user="{USER}"
set imap_pass="{PASSWORD}"
set folder="imap://127.0.0.1:{imap.port("imap")}/"
set spoolfile="+Mutt"
set ssl_starttls=no
set ssl_force_tls=no
set imap_passive=yes
set wait_key=no
set quit=yes
set move=no
set record=""
set pipe_decode=no
set mark_old=no
set confirmappend=no
set delete=yes
set beep=no
set timeout=5
set imap_keepalive=30
""")
    # Pipe the message out, flag it, save it to Archive (a COPY that marks the original deleted), and
    # sync (STORE, then EXPUNGE of the original).
    keys = f'<pipe-message>cat > {out}<enter><flag-message><sync-mailbox><save-message>=Archive<enter><sync-mailbox><quit>'
    env = dict(os.environ, TERM="vt100", HOME=imap.root, LANG="C.UTF-8")
    rc, screen = run_on_pty([mutt, "-n", "-F", rc_file, "-f", "=Mutt", "-e", f"push '{keys}'"], 60, env)
    assert rc == 0, screen[-2000:].decode("latin-1")
    with open(out, "rb") as fh:
        got = fh.read()
    assert got == text.replace(b"\r\n", b"\n"), got
    assert c.select("Mutt")[1] == [b"0"]
    assert c.select("Archive")[1] == [b"1"]
    typ, data = c.fetch("1", "(FLAGS BODY.PEEK[])")
    assert b"\\Flagged" in data[0][0] and data[0][1] == text, data
    c.logout()


# ---- curl ----

def curl(*args):
    p = subprocess.run([need("curl"), "-s", "-S", "--max-time", "20", "-u", f"{USER}:{PASSWORD}", *args],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize("scheme", ["imap", "imaps", "imap+starttls"])
def test_curl_lists_fetches_by_uid_and_searches(imap, scheme):
    need("curl")
    deliver(imap, "From: a@example.org\nSubject: first\n\nnothing here\n")
    deliver(imap, "From: b@example.org\nSubject: needle in a haystack\n\nthe second message\n")
    if scheme == "imap":
        base, extra = f"imap://127.0.0.1:{imap.port('imap')}", []
    elif scheme == "imaps":
        base, extra = f"imaps://127.0.0.1:{imap.port('imaps')}", ["--cacert", imap.cert]
    else:
        base, extra = f"imap://127.0.0.1:{imap.port('imap')}", ["--ssl-reqd", "--cacert", imap.cert]
    listing = curl(*extra, base + "/").decode()
    assert re.search(r'^\* LIST \([^)]*\) "/" "?INBOX"?\r$', listing, re.M), listing
    assert re.search(r'^\* LIST \([^)]*\\Sent[^)]*\) "/" "?Sent"?\r$', listing, re.M), listing
    body = curl(*extra, base + "/INBOX;UID=2")
    stored = [open(p, "rb").read() for p in imap.mail(USER)]
    assert body in [s.replace(b"\n", b"\r\n") for s in stored], body
    assert b"Subject: needle in a haystack\r\n" in body
    header = curl(*extra, base + "/INBOX;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)")
    assert header == b"Subject: first\r\n\r\n", header
    found = curl(*extra, base + "/INBOX?SUBJECT%20needle").decode()
    assert found.strip() == "* SEARCH 2", found
    # Both fetches above were BODY[], not BODY.PEEK[]: they set \Seen.
    flags = curl(*extra, base + "/INBOX", "-X", "UID FETCH 1:* (FLAGS)").decode()
    for n in (1, 2):
        assert re.search(rf"^\* {n} FETCH \((UID {n} FLAGS \(\\Seen\)|FLAGS \(\\Seen\) UID {n})\)\r$", flags, re.M), flags
    # An upload is an APPEND (with a synchronising literal).
    upload = os.path.join(imap.root, "upload.eml")
    with open(upload, "wb") as fh:
        fh.write(b"From: me@example.test\r\nSubject: sent by curl\r\n\r\nuploaded\r\n")
    curl(*extra, "-T", upload, base + "/Sent")
    assert curl(*extra, base + "/Sent;UID=1") == open(upload, "rb").read()
    if scheme != "imap":
        imap.wait_log("imapd", r"login user=demo@example\.test from 127\.0\.0\.1 \(TLS\)")


# ---- fetchmail ----

def test_fetchmail_downloads_every_message(imap):
    fetchmail = need("fetchmail")
    for i in range(5):
        deliver(imap, f"From: f{i}@example.org\nSubject: fetch {i}\nMessage-ID: <f{i}@example.org>\n\nbody {i}\n")
    out = os.path.join(imap.root, "fetched")
    os.makedirs(out)
    rc_file = os.path.join(imap.root, "fetchmailrc")
    with open(rc_file, "w") as fh:
        fh.write(f"""set no syslog
set invisible
poll 127.0.0.1 with protocol IMAP and port {imap.port("imaps")}
    user "{USER}" there with password "{PASSWORD}" is "root" here
    options keep fetchall no rewrite
    ssl sslcertck sslcertfile "{imap.cert}" sslcommonname "mx.test"
    mda "/bin/sh -c 'cat > $(mktemp {out}/m.XXXXXX)'"
""")
    os.chmod(rc_file, 0o600)
    p = subprocess.run([fetchmail, "-f", rc_file, "--nodetach", "-v"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, HOME=imap.root))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    got = {}
    for path in glob.glob(os.path.join(out, "*")):
        with open(path, "rb") as fh:
            data = fh.read()
        got[msgid(data)] = data
    assert set(got) == {f"<f{i}@example.org>" for i in range(5)}, p.stdout[-2000:]
    for mid, data in got.items():
        i = mid[2]
        assert data.endswith(f"body {i}\n".encode()), data
    c = login(imap)
    c.select("INBOX")
    typ, data = c.fetch("1:*", "(FLAGS)")
    assert all(b"\\Seen" in d for d in data), data  # fetchmail marks what it fetched
    c.logout()
