"""The mailbox index under SIGKILL: ferry-imapd killed in STORE and EXPUNGE floods and at its pause points,
ferry-mda killed while a session has the folder selected, and a POP3 DELE an IMAP session hears of."""
import os
import poplib
import random
import re
import smtplib
import subprocess
import threading
import time
import uuid

import pytest

from ferry_harness import LineConn, binary, wait_until

USER = "demo@example.test"
PASSWORD = "demo-secret"


class Imap(LineConn):
    """A raw IMAP connection; `command` returns (untagged responses with their literals, tagged line)."""

    def __init__(self, port):
        super().__init__(port, timeout=20)
        self.n = 0
        assert self.raw_line().startswith(b"* OK")

    def read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self):
        """One response line with any literals inline, as bytes."""
        line = self.raw_line()
        while True:
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return line
            line += b"\r\n" + self.read_exact(int(m.group(1))) + self.raw_line()

    def send_command(self, line):
        self.n += 1
        tag = f"c{self.n}"
        self.send(f"{tag} {line}\r\n")
        return tag

    def finish(self, tag):
        untagged = []
        while True:
            r = self.response()
            if r.startswith(tag.encode() + b" "):
                return untagged, r.decode()
            untagged.append(r)

    def command(self, line):
        return self.finish(self.send_command(line))

    def ok(self, line):
        untagged, tagged = self.command(line)
        assert " OK " in tagged, (line, tagged)
        return untagged


def session(f, mailbox="INBOX"):
    c = Imap(f.port("imap"))
    c.ok(f"LOGIN {USER} {PASSWORD}")
    c.ok(f"SELECT {mailbox}")
    return c


class UidBook:
    """Every UID a client was ever shown, with the Message-ID it named: no UID may later name another."""

    def __init__(self):
        self.seen = {}  # (uidvalidity, uid) -> message-id

    def view(self, f, mailbox="INBOX"):
        """A fresh session's (uidvalidity, [(uid, message-id, flags)] in sequence order), checked and recorded."""
        c = Imap(f.port("imap"))
        c.ok(f"LOGIN {USER} {PASSWORD}")
        sel = c.ok(f"SELECT {mailbox}")
        untagged, _ = c.command("FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        validity = int(next(re.search(rb"UIDVALIDITY (\d+)", r).group(1) for r in sel if b"UIDVALIDITY" in r))
        uidnext = int(next(re.search(rb"UIDNEXT (\d+)", r).group(1) for r in sel if b"UIDNEXT" in r))
        c.send_command("LOGOUT")
        c.close()
        rows = []
        for r in untagged:
            m = re.match(rb"\* (\d+) FETCH \(.*UID (\d+)", r, re.S)
            if not m:
                continue
            mid = re.search(rb"Message-ID: (<[^>]+>)", r, re.I)
            flags = re.search(rb"FLAGS \(([^)]*)\)", r).group(1).decode().split()
            rows.append((int(m.group(2)), mid.group(1).decode() if mid else None, set(flags)))
        uids = [u for u, _, _ in rows]
        assert uids == sorted(set(uids)), f"UIDs not strictly ascending: {uids}"
        for uid, mid, _ in rows:
            self.note(validity, uid, mid)
        assert all(uid < uidnext for uid in uids), (uidnext, uids[-5:])
        # A UID handed out once is never handed out again: UIDNEXT stays above every UID ever shown.
        shown = [u for (v, u) in self.seen if v == validity]
        assert not shown or uidnext > max(shown), (uidnext, max(shown))
        return validity, rows

    def note(self, validity, uid, mid):
        old = self.seen.setdefault((validity, uid), mid)
        assert old == mid, f"UID {uid} named {old} and now {mid}"


def index_uids(mailbox_dir):
    """The UIDs of the append records of the folder's ferry-index file, checked ascending record by record."""
    path = os.path.join(mailbox_dir, "ferry-index")
    last, uidnext, out = 0, 0, []
    with open(path, "rb") as fh:
        for line in fh.read().split(b"\n")[:-1]:
            fields = line[18:].split(b" ")
            assert int(fields[1]) >= uidnext, "UIDNEXT went back in the index"
            uidnext = int(fields[1])
            if fields[0] == b"A":
                uid = int(fields[3])
                assert last < uid < uidnext, (last, uid, uidnext)
                last = uid
                out.append(uid)
    return out


def fill(f, count):
    """Messages written into INBOX's Maildir behind the index's back (the next sync gives them UIDs)."""
    md = f.maildir(USER)
    os.makedirs(os.path.join(md, "new"), exist_ok=True)
    base = int(time.time()) - count - 10
    mids = []
    for i in range(count):
        mid = f"<{i}.{uuid.uuid4().hex[:8]}@crash.test>"
        data = f"From: a@example.org\nSubject: crash {i}\nMessage-ID: {mid}\n\nbody {i}\n".encode()
        path = os.path.join(md, "new", f"{base + i}.M{i}P{os.getpid()}.fill,S={len(data)},W={len(data) + 5}")
        with open(path, "wb") as fh:
            fh.write(data)
        os.utime(path, (base + i, base + i))
        mids.append(mid)
    return mids


def files_by_mid(f):
    out = {}
    for path in f.mail(USER):
        with open(path, "rb") as fh:
            m = re.search(rb"^Message-ID: (<[^>]+>)$", fh.read(), re.M | re.I)
        out.setdefault(m.group(1).decode() if m else None, []).append(path)
    return out


@pytest.fixture
def imap(host):
    host.start("imapd")
    return host


# ---- ferry-imapd killed while it changes flags and expunges ----

FLAGS = ["\\Flagged", "\\Seen", "\\Answered", "$Work", "$Later"]


def flood(c, live, model, deleted, stop, acked):
    """STOREs and EXPUNGEs one after the other until the connection dies or `stop` is set; the model
    follows what was acknowledged, and acked["pending"] names the one command in flight."""
    rng = random.Random(7)
    acked["error"] = None
    try:
        while not stop.is_set():
            if not live:
                break  # every message is expunged: nothing is left to change
            uid = rng.choice(sorted(live))
            if rng.random() < 0.1:
                acked["pending"] = ("expunge", uid)
                c.ok(f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
                untagged, tagged = c.command(f"UID EXPUNGE {uid}")
                assert " OK " in tagged, tagged
                live.discard(uid)
                deleted.add(uid)
            else:
                flag, add = rng.choice(FLAGS), rng.random() < 0.6
                acked["pending"] = ("flag", uid, flag)
                untagged, tagged = c.command(f"UID STORE {uid} {'+' if add else '-'}FLAGS ({flag})")
                assert " OK " in tagged, tagged
                (model[uid].add if add else model[uid].discard)(flag)
            acked["pending"] = None
            acked["count"] += 1
    except (EOFError, OSError):
        pass
    except AssertionError as e:
        acked["error"] = e


def check_after_crash(f, book, mids, uid_of, model, deleted, pending):
    """After a restart: no message lost, every acknowledged flag change and expunge still there."""
    validity, rows = book.view(f)
    by_uid = {uid: (mid, flags) for uid, mid, flags in rows}
    loose = {pending[1]} if pending else set()
    for mid in mids:
        uid = uid_of[mid]
        if uid in deleted:
            assert uid not in by_uid, f"UID {uid} was expunged with OK and is back"
            continue
        if uid not in by_uid:
            assert pending == ("expunge", uid), f"{mid} (UID {uid}) is lost"
            deleted.add(uid)
            continue
        assert by_uid[uid][0] == mid
        got = by_uid[uid][1] - {"\\Recent", "\\Deleted"}
        want = model[uid]
        if uid in loose and pending[0] == "flag":
            got, want = got - {pending[2]}, want - {pending[2]}
        assert got == want, f"UID {uid}: flags {got}, acknowledged {want}"
        if pending == ("expunge", uid):
            model[uid].discard("\\Deleted")
    files = files_by_mid(f)
    assert all(len(files.get(mid, [])) == (0 if uid_of[mid] in deleted else 1) for mid in mids)
    assert set(by_uid) <= set(index_uids(f.maildir(USER)))
    return validity


def test_sigkill_of_imapd_in_store_and_expunge_floods_keeps_what_was_acknowledged(imap):
    mids = fill(imap, 60)
    book = UidBook()
    validity, rows = book.view(imap)
    uid_of = {mid: uid for uid, mid, _ in rows}
    assert len(uid_of) == 60
    model = {uid: set() for uid in uid_of.values()}
    live, deleted = set(uid_of.values()), set()
    rng = random.Random(11)
    # ferry-mda delivers into the same folder all along: its appends meet the floods and the kills.
    delivered, done = [], threading.Event()

    def deliveries():
        for i in range(200):
            if done.is_set():
                return
            mid = f"<lda{i}.{uuid.uuid4().hex[:6]}@crash.test>"
            deliver(imap, f"From: b@example.org\nMessage-ID: {mid}\n\ndelivered {i}\n")
            delivered.append(mid)

    lda = threading.Thread(target=deliveries)
    lda.start()
    for _ in range(4):
        c = session(imap)
        stop, acked = threading.Event(), {"count": 0, "pending": None}
        t = threading.Thread(target=flood, args=(c, live, model, deleted, stop, acked))
        t.start()
        want = acked["count"] + rng.randint(15, 40)
        wait_until(lambda: acked["count"] >= want or not t.is_alive(), timeout=30, what="acknowledged changes")
        imap.kill("imapd")
        t.join(10)
        c.close()
        assert acked["error"] is None, acked["error"]
        pending = acked["pending"]
        imap.start("imapd")
        assert check_after_crash(imap, book, mids, uid_of, model, deleted, pending) == validity
        live -= deleted
        if pending and pending[0] == "flag":
            # The change in flight may or may not have landed: take what the server says now.
            _, rows = book.view(imap)
            for uid, _, flags in rows:
                if uid == pending[1]:
                    model[uid] = flags - {"\\Recent"}
    done.set()
    lda.join(60)
    assert delivered, "no delivery ran during the floods"
    _, rows = book.view(imap)
    shown = [mid for _, mid, _ in rows]
    files = files_by_mid(imap)
    assert all(shown.count(mid) == 1 and len(files.get(mid, [])) == 1 for mid in delivered), delivered
    assert deleted, "the floods expunged nothing"


@pytest.mark.parametrize("point", ["index-after-flag-rename", "index-after-expunge-unlink"])
def test_sigkill_of_imapd_between_the_file_and_the_index_record(imap, point):
    mids = fill(imap, 5)
    book = UidBook()
    validity, rows = book.view(imap)
    uid_of = {mid: uid for uid, mid, _ in rows}
    if point == "index-after-expunge-unlink":
        c = session(imap)
        c.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)")
        c.close()
    imap.set(**{"imapd.test_pause_at": point})
    imap.restart("imapd")
    c = session(imap)
    watcher = session(imap)  # a second session with the folder selected: it dies with the process
    tag = c.send_command("UID STORE 2:3 +FLAGS (\\Flagged $Work)" if point == "index-after-flag-rename" else "EXPUNGE")
    imap.wait_log("imapd", rf"paused at {point}")
    imap.kill("imapd")
    with pytest.raises((EOFError, OSError)):
        c.finish(tag)
    watcher.close()
    imap.set(**{"imapd.test_pause_at": ""})
    imap.start("imapd")
    v, rows = book.view(imap)
    assert v == validity
    by_uid = {uid: (mid, flags) for uid, mid, flags in rows}
    if point == "index-after-flag-rename":
        # The file names carry the flag: the next sync records it, though no one was told OK.
        assert set(by_uid) == set(uid_of.values())
        assert all("\\Flagged" in by_uid[u][1] for u in (2, 3)), rows
        assert all("\\Flagged" not in by_uid[u][1] for u in (1, 4, 5)), rows
        # A flag change after the restart is recorded as any other.
        c = session(imap)
        c.ok("UID STORE 1 +FLAGS ($Later)")
        c.close()
        assert "$Later" in {u: fl for u, _, fl in book.view(imap)[1]}[1]
    else:
        assert set(by_uid) == set(uid_of.values()) - {2}, rows
        assert sorted(files_by_mid(imap)) == sorted(m for m in mids if uid_of[m] != 2)
    assert index_uids(imap.maildir(USER))[-1] == 5
    # New mail after the crash gets a UID above every one shown before.
    deliver(imap, "From: x@example.org\nMessage-ID: <after@crash.test>\n\nafter\n")
    v, rows = book.view(imap)
    assert rows[-1][0] == 6 and rows[-1][1] == "<after@crash.test>", rows


def test_a_torn_record_left_by_a_killed_writer_is_cut_and_nothing_is_lost(imap):
    fill(imap, 5)
    book = UidBook()
    c = session(imap)
    c.ok("UID STORE 1 +FLAGS (\\Flagged $Work)")
    c.close()
    validity, rows = book.view(imap)
    path = os.path.join(imap.maildir(USER), "ferry-index")
    with open(path, "rb") as fh:
        last = fh.read().split(b"\n")[-2] + b"\n"
    # A writer killed inside its write(2) leaves a prefix of a record: cut in the frame, in the payload,
    # and before the final newline; then ferry-mda, a reading session and a flag change meet it.
    steps = [(5, "deliver"), (len(last) // 2, "read"), (len(last) - 1, "store")]
    for n, (cut, then) in enumerate(steps):
        with open(path, "ab") as fh:
            fh.write(last[:cut])
        if then == "deliver":
            deliver(imap, f"From: x@example.org\nMessage-ID: <torn{n}@crash.test>\n\nafter a torn write\n")
        elif then == "store":
            c = session(imap)
            c.ok("UID STORE 2 +FLAGS (\\Answered)")
            c.close()
        v, rows = book.view(imap)
        assert v == validity, "a torn tail is cut, not a reason for a new UIDVALIDITY"
        with open(path, "rb") as fh:
            assert fh.read().endswith(b"\n")
        flags = {uid: fl for uid, _, fl in rows}
        assert "\\Flagged" in flags[1] and "$Work" in flags[1], rows
        assert len(rows) == 6 and rows[-1][0] == 6 and rows[-1][1] == "<torn0@crash.test>", rows
    assert "\\Answered" in flags[2]
    assert index_uids(imap.maildir(USER)) == [1, 2, 3, 4, 5, 6]


# ---- ferry-mda killed while a session has the folder selected ----

def deliver(f, text):
    p = subprocess.run([binary("mda"), "-c", f.conf, "-d", USER], input=text.encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode()


def smtp_send(f, mid):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", [USER], f"From: a@outside.test\r\nMessage-ID: {mid}\r\nSubject: t\r\n\r\n{mid}\r\n")


def noop_view(c, book, validity, known):
    """NOOP on a selected session, then the UIDs and Message-IDs of the messages it has not seen yet."""
    untagged = c.ok("NOOP")
    exists = [int(r.split()[1]) for r in untagged if r.endswith(b" EXISTS")]
    for r in untagged:
        m = re.match(rb"\* (\d+) EXPUNGE$", r)
        assert not m, f"nothing was expunged, yet {r}"
    if exists:
        untagged = c.ok(f"FETCH {len(known) + 1}:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        for r in untagged:
            m = re.match(rb"\* (\d+) FETCH \(.*UID (\d+)", r, re.S)
            mid = re.search(rb"Message-ID: (<[^>]+>)", r, re.I).group(1).decode()
            uid = int(m.group(2))
            assert int(m.group(1)) == len(known) + 1 and (not known or uid > known[-1][0]), (r, known[-3:])
            book.note(validity, uid, mid)
            known.append((uid, mid))


@pytest.mark.parametrize("point", ["mda-after-intent", "index-before-uid", "mda-after-link", "mda-before-reply"])
def test_sigkill_of_mda_while_a_session_has_inbox_selected(mailhost, point):
    f = mailhost
    f.set(qmgr_lmtp_timeout="2s")
    f.start("imapd")
    book = UidBook()
    validity, rows = book.view(f)
    c = session(f)
    known = []
    before = [f"<b{i}.{uuid.uuid4().hex[:6]}@crash.test>" for i in range(3)]
    for mid in before:
        smtp_send(f, mid)
    wait_until(lambda: len(f.mail(USER)) >= 3, what="three deliveries")
    noop_view(c, book, validity, known)
    # The next delivery stops at the point; the session looks while it is stopped, then mda dies.
    f.set(**{"mda.test_pause_at": point})
    f.restart("mda")
    victim = f"<victim.{uuid.uuid4().hex[:6]}@crash.test>"
    smtp_send(f, victim)  # 250 from smtpd: the message is accepted and must arrive
    f.wait_log("mda", rf"paused at {point}")
    noop_view(c, book, validity, known)
    f.kill("mda")
    f.set(**{"mda.test_pause_at": ""})
    f.start("mda")
    after = [f"<a{i}.{uuid.uuid4().hex[:6]}@crash.test>" for i in range(3)]
    for mid in after:
        smtp_send(f, mid)
    wait_until(lambda: f.spool_ids("queue") == [] and f.spool_ids("state") == [], timeout=30, what="queue emptied")
    noop_view(c, book, validity, known)
    accepted = before + [victim] + after
    seen = [mid for _, mid in known]
    assert set(seen) == set(accepted), (seen, accepted)
    assert len(seen) - len(accepted) <= 1 and all(seen.count(m) == 1 for m in accepted if m != victim)
    v, rows = book.view(f)
    assert v == validity and [(u, m) for u, m, _ in rows] == known
    files = files_by_mid(f)
    assert all(len(files.get(mid, [])) >= 1 for mid in accepted)
    assert {u for u, _ in known} <= set(index_uids(f.maildir(USER)))


# ---- POP3 and IMAP on one mailbox ----

def test_pop3_dele_is_seen_by_an_imap_session(imap):
    imap.start("popd")
    for i in range(3):
        deliver(imap, f"From: a@example.org\nMessage-ID: <p{i}@crash.test>\nSubject: pop {i}\n\nbody {i}\n")
    c = session(imap)
    untagged = c.ok("FETCH 1:3 (UID)")
    assert [re.search(rb"UID (\d+)", r).group(1) for r in untagged] == [b"1", b"2", b"3"]
    pop = poplib.POP3("127.0.0.1", imap.port("pop3"), timeout=10)
    pop.user(USER)
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 3
    pop.dele(2)
    # Before the POP3 session commits, IMAP still sees all three.
    assert not [r for r in c.ok("NOOP") if r.endswith(b"EXPUNGE")]
    pop.quit()
    wait_until(lambda: len(imap.mail(USER)) == 2, what="the DELE committed")
    # No EXPUNGE during a FETCH (RFC 9051 section 7.5.1): the message is still there for it.
    untagged = c.ok("FETCH 1:3 (UID)")
    assert not [r for r in untagged if r.endswith(b"EXPUNGE")], untagged
    untagged = c.ok("NOOP")
    assert untagged == [b"* 2 EXPUNGE"], untagged
    untagged = c.ok("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    got = [(re.search(rb"UID (\d+)", r).group(1), re.search(rb"<(p\d)@", r).group(1)) for r in untagged]
    assert got == [(b"1", b"p0"), (b"3", b"p2")], got
    # The index agrees for a session that comes later, and POP3 UIDLs did not move.
    book = UidBook()
    v, rows = book.view(imap)
    assert [u for u, _, _ in rows] == [1, 3]
    pop = poplib.POP3("127.0.0.1", imap.port("pop3"), timeout=10)
    pop.user(USER)
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 2
    pop.quit()


def test_one_seconds_deliveries_keep_their_order_in_uids_and_pop3_numbers(imap):
    # Names carry the microseconds unpadded ("M99999" sorts after "M100000" as text): the order
    # of delivery is the files' mtime to the nanosecond.
    imap.start("popd")
    md = imap.maildir(USER)
    os.makedirs(os.path.join(md, "new"), exist_ok=True)
    sec = int(time.time()) - 5
    for n, usec in enumerate((99999, 100000, 7)):
        data = f"From: a@example.org\nMessage-ID: <o{n}@crash.test>\n\nbody {n}\n".encode()
        path = os.path.join(md, "new", f"{sec}.M{usec}P1Q1.host,S={len(data)},W={len(data) + 4}")
        with open(path, "wb") as fh:
            fh.write(data)
        ns = sec * 10**9 + (n + 1) * 10**8
        os.utime(path, ns=(ns, ns))
    pop = poplib.POP3("127.0.0.1", imap.port("pop3"), timeout=10)
    pop.user(USER)
    pop.pass_(PASSWORD)
    got = [re.search(rb"<(o\d)@", b"\n".join(pop.retr(i)[1])).group(1) for i in (1, 2, 3)]
    pop.quit()
    assert got == [b"o0", b"o1", b"o2"], got
    _, rows = UidBook().view(imap)
    assert [(u, m) for u, m, _ in rows] == [(1, "<o0@crash.test>"), (2, "<o1@crash.test>"), (3, "<o2@crash.test>")], rows
