"""ferry-imapd FETCH: sections against the stored file, BINARY, MODSEQ, the index cache and streaming under back-pressure."""
import base64
import os
import re
import socket
import time

from ferry_harness import LineConn
from test_imapd import USER, PASSWORD, imap, deliver, logged_in, start  # noqa: F401 (imap is a fixture)

BLOB = bytes(range(256)) * 3 + b"\x00end"

PARTS = ("From: Alice <alice@example.org>\nTo: demo@example.test\nSubject: parts\nMIME-Version: 1.0\n"
         "Content-Type: multipart/mixed; boundary=\"b1\"\n\npreamble\n"
         "--b1\nContent-Type: multipart/alternative; boundary=\"b2\"\n\n"
         "--b2\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
         "caf=C3=A9 au lait\n"
         "--b2\nContent-Type: text/html\n\n<p>hi</p>\n--b2--\n"
         "--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
         + base64.encodebytes(BLOB).decode() +
         "--b1\nContent-Type: application/x-odd\nContent-Transfer-Encoding: x-unknown\n\nzzz\n"
         "--b1--\n")


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def stored(f):
    files = f.mail(USER)
    assert len(files) == 1, files
    return open(files[0], "rb").read()


def literal(c, num, item):
    typ, data = c.fetch(num, item)
    assert typ == "OK", data
    assert isinstance(data[0], tuple), data
    return data[0][1]


def test_body_sections_and_partials_match_the_file(imap):
    deliver(imap, PARTS)
    c = logged_in(imap)
    c.select("INBOX")
    whole = crlf(stored(imap))
    head, _, text = whole.partition(b"\r\n\r\n")
    assert literal(c, "1", "(BODY.PEEK[])") == whole
    assert literal(c, "1", "(RFC822.HEADER)") == head + b"\r\n\r\n"
    assert literal(c, "1", "(BODY.PEEK[TEXT])") == text
    assert literal(c, "1", "(BODY.PEEK[1.2])") == b"<p>hi</p>"
    assert literal(c, "1", "(BODY.PEEK[1.2.MIME])") == b"Content-Type: text/html\r\n\r\n"
    assert literal(c, "1", "(BODY.PEEK[1.1])") == b"caf=C3=A9 au lait"
    assert literal(c, "1", "(BODY.PEEK[HEADER.FIELDS (Subject)])") == b"Subject: parts\r\n\r\n"
    typ, data = c.fetch("1", "(BODY.PEEK[]<5.20>)")
    assert data[0][0].endswith(b"BODY[]<5> {20}") and data[0][1] == whole[5:25], data
    # A partial crossing the end is cut; one past it is empty.
    typ, data = c.fetch("1", f"(BODY.PEEK[]<{len(whole) - 3}.100>)")
    assert data[0][1] == whole[-3:], data
    typ, data = c.fetch("1", f"(BODY.PEEK[]<{len(whole) + 10}.5>)")
    assert data[0][0].endswith(b"{0}"), data
    assert c.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Recent))"]
    typ, data = c.fetch("1", "(RFC822.SIZE)")
    assert data == [b"1 (RFC822.SIZE %d)" % len(whole)], data
    c.logout()


def test_binary_decodes_leaf_parts(imap):
    deliver(imap, PARTS)
    c = logged_in(imap)
    typ, data = c.capability()
    assert b"BINARY" in data[0].split(), data
    c.select("INBOX")
    # The base64 part holds a NUL: a literal8 (RFC 3516 section 4.3).
    typ, data = c.fetch("1", "(BINARY.PEEK[2])")
    assert typ == "OK" and data[0][0].endswith(b"BINARY[2] ~{%d}" % len(BLOB)), data
    assert data[0][1] == BLOB
    assert literal(c, "1", "(BINARY.PEEK[1.1])") == "café au lait".encode()
    typ, data = c.fetch("1", "(BINARY.PEEK[2]<2.3>)")
    assert data[0][0].endswith(b"BINARY[2]<2> {3}") and data[0][1] == BLOB[2:5], data
    typ, data = c.fetch("1", "(BINARY.SIZE[2] BINARY.SIZE[1.2])")
    assert data == [b"1 (BINARY.SIZE[2] %d BINARY.SIZE[1.2] 9)" % len(BLOB)], data
    typ, data = c.fetch("1", "(BINARY.PEEK[3])")
    assert typ == "NO" and b"UNKNOWN-CTE" in data[0], data
    assert c.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Recent))"]  # PEEK left it unseen
    # BINARY without PEEK sets \Seen and says so.
    typ, data = c.fetch("1", "(BINARY[1.2])")
    assert data[0][1] == b"<p>hi</p>" and b"\\Seen" in data[0][0] + data[1], data
    c.logout()


def test_modseq_and_changedsince(imap):
    for i in range(3):
        deliver(imap, f"Subject: m{i}\n\nbody {i}\n")
    c = logged_in(imap)
    c.select("INBOX")
    typ, data = c.fetch("1:3", "(MODSEQ)")
    seqs = [int(re.search(rb"MODSEQ \((\d+)\)", d).group(1)) for d in data]
    assert len(seqs) == 3 and all(s > 0 for s in seqs), data
    top = max(seqs)
    typ, data = c.store("2", "+FLAGS", "(\\Flagged)")
    typ, data = c.fetch("1:*", f"(FLAGS) (CHANGEDSINCE {top})")
    assert typ == "OK" and len(data) == 1, data
    m = re.match(rb"2 \(FLAGS \(\\Flagged \\Recent\) MODSEQ \((\d+)\)\)", data[0])
    assert m and int(m.group(1)) > top, data
    typ, data = c.uid("FETCH", "1:*", f"(UID) (CHANGEDSINCE {int(m.group(1))})")
    assert data == [None], data
    c.logout()


def test_whole_message_fetch_sizes_from_names_only_when_they_hold(imap):
    # A whole-message FETCH takes the size from the name's W= when its S= is the file's size (as
    # Dovecot does); a name that does not hold (no S=/W=, or an S= the file no longer has) is
    # answered from the message itself, so the literal is always the file's bytes.
    deliver(imap, "Subject: delivered\n\nbody\n")
    md = imap.maildir(USER)
    odd = {
        "1700000001.M1P1.plain": b"Subject: no sizes\n\nplain\n",
        "1700000002.M2P2.wrong,S=5,W=9": b"Subject: the name lies\n\n" + b"y" * 300 + b"\n",
        "1700000003.M3P3.right,S=26,W=29": b"Subject: a right name\n\nok\n",
    }
    for name, data in odd.items():
        with open(os.path.join(md, "new", name), "wb") as f:
            f.write(data)
    c = logged_in(imap)
    c.select("INBOX")
    typ, data = c.fetch("1:4", "(UID RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK", data
    bodies = [d[1] for d in data if isinstance(d, tuple)]
    want = [crlf(stored_file) for stored_file in [open(p, "rb").read() for p in sorted(imap.mail(USER))]]
    assert sorted(bodies) == sorted(want), bodies
    for d in data:
        if isinstance(d, tuple):
            size = int(re.search(rb"RFC822.SIZE (\d+)", d[0]).group(1))
            assert size == len(d[1]), d[0]
    typ, data = c.fetch("3", "(RFC822)")
    assert data[0][1] == crlf(odd["1700000002.M2P2.wrong,S=5,W=9"]), data
    c.logout()


def short_items(c):
    typ, data = c.fetch("1:*", "(FLAGS ENVELOPE UID RFC822.SIZE INTERNALDATE BODYSTRUCTURE)")
    assert typ == "OK", data
    return data


def test_cached_items_need_no_message_file(imap):
    for i in range(3):
        deliver(imap, PARTS.replace("Subject: parts", f"Subject: cached {i}"))
    c = logged_in(imap)
    c.select("INBOX", readonly=True)  # EXAMINE writes the cache too: it is no MODSEQ change
    before = short_items(c)
    assert len(before) == 3 and b"cached 2" in before[2], before
    c.logout()
    # The files change behind the index's back (their names stay, so no sync notices): what the
    # cache holds is answered as it was, which proves no file was read for it.
    originals = {p: open(p, "rb").read() for p in imap.mail(USER)}
    for p in originals:
        with open(p, "wb") as f:
            f.write(b"Subject: tampered\n\nx\n")
    try:
        c = logged_in(imap)  # a new session: the cache comes from the index file
        c.select("INBOX", readonly=True)
        assert short_items(c) == before
        typ, data = c.search(None, "LARGER", "100", "SINCE", "1-Jan-2000")
        assert data == [b"1 2 3"], data  # the cached sizes, not the files' 20 octets
        c.logout()
    finally:
        for p, data in originals.items():
            with open(p, "wb") as f:
                f.write(data)
    c = logged_in(imap)
    c.select("INBOX")
    assert literal(c, "1", "(BODY.PEEK[1.2])") == b"<p>hi</p>"
    c.logout()


class Raw(LineConn):
    def command(self, line, tag):
        self.send(line + "\r\n")
        while True:
            line = self.raw_line()
            if line.startswith(tag.encode() + b" "):
                return line


def raw_selected(imap):
    """A raw connection to a freshly started ferry-imapd, logged in, INBOX selected."""
    r = Raw(start(imap), timeout=60)
    r.raw_line()
    assert b"OK" in r.command(f"a LOGIN {USER} {PASSWORD}", "a")
    assert b"OK" in r.command("b SELECT INBOX", "b")
    return r


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_client_that_does_not_read_keeps_memory_bounded(imap):
    deliver(imap, "Subject: first\n\nsmall\n")
    md = imap.maildir(USER)
    line = b"x" * 99 + b"\n"
    count, size = 40, 1 << 20
    bodies = {}
    for i in range(count):
        data = b"Subject: big %d\n\n" % i + line * (size // len(line)) + b"last line without newline %d" % i
        bodies[b"big %d" % i] = data
        with open(os.path.join(md, "new", f"17000000{i:02d}.M{i}P1.fetchtest"), "wb") as f:
            f.write(data)
    r = raw_selected(imap)
    pid = imap.procs["imapd"].pid
    base = rss_kib(pid)
    r.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    # The whole mailbox (40 MiB) asked for, and a command pipelined behind it; nothing read.
    r.send("c FETCH 1:* (UID BODY.PEEK[])\r\nd NOOP\r\n")
    peak = base
    end = time.time() + 3
    while time.time() < end:  # watching, not waiting: the server must stay small all along
        peak = max(peak, rss_kib(pid))
        time.sleep(0.05)
    assert peak - base < 16 * 1024, (base, peak)
    # Reading now gets every message whole and in order, then both tagged replies.
    seen = 0
    while True:
        head = r.raw_line()
        if head.startswith(b"c "):
            assert head.startswith(b"c OK"), head
            break
        m = re.match(rb"\* (\d+) FETCH \(UID (\d+) BODY\[\] \{(\d+)\}$", head)
        assert m, head[:200]
        data = r.exactly(int(m.group(3)))
        assert r.raw_line() == b")"
        subject = re.search(rb"Subject: (big \d+|first)", data).group(1)
        if subject != b"first":
            assert data == crlf(bodies[subject]), subject
        seen += 1
    assert seen == count + 1
    assert r.raw_line().startswith(b"d OK")
    r.close()


def test_a_message_file_truncated_while_it_is_sent(imap):
    # Another Maildir writer truncates a file in place while FETCH streams it (ferry never does):
    # the literal keeps its promised length, the octets up to the new end are the file's, the rest
    # are spaces, and the server lives on.
    deliver(imap, "Subject: first\n\nsmall\n")
    md = imap.maildir(USER)
    data = b"Subject: long\n\n" + (b"x" * 99 + b"\n") * (1 << 18)
    path = os.path.join(md, "new", "1700000099.M1P1.truncatetest")
    with open(path, "wb") as f:
        f.write(data)
    r = raw_selected(imap)
    r.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    r.send("c FETCH 2 (BODY.PEEK[])\r\n")
    time.sleep(0.5)  # the server fills the socket and waits; it is far from the new end
    keep = (12 << 20) + 100
    os.truncate(path, keep)
    head = r.raw_line()
    m = re.match(rb"\* 2 FETCH \(BODY\[\] \{(\d+)\}$", head)
    assert m, head
    got = r.exactly(int(m.group(1)))
    assert int(m.group(1)) == len(crlf(data))
    assert r.raw_line() == b")"
    assert r.raw_line().startswith(b"c OK")
    sent = got.rstrip(b" ")
    assert b"\0" not in got
    assert crlf(data).startswith(sent) and len(sent) >= len(crlf(data[:keep])), len(sent)
    assert b"OK" in r.command("d NOOP", "d")
    assert imap.procs["imapd"].poll() is None
    r.close()
