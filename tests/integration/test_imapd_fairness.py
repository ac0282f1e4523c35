"""ferry-imapd fairness: one session's long FETCH or SEARCH runs in slices, and the other sessions answer in between."""
import base64
import os
import random
import re
import select
import socket

from ferry_harness import LineConn
from test_imapd import USER, PASSWORD, imap, deliver, start  # noqa: F401 (imap is a fixture)

COUNT = 24
TEXT_LINE = b"the quick brown fox jumps over the lazy dog again and again\n"


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def message(i):
    """About 1 MiB: 512 KiB of text (a word of its own every 7th message) and 512 KiB of base64."""
    rnd = random.Random(i)
    blob = bytes(rnd.getrandbits(8) for _ in range(384 * 1024))
    word = b"marker%d" % (i % 7) if i % 7 == 0 else b"plain"
    text = TEXT_LINE * (512 * 1024 // len(TEXT_LINE)) + word + b"\n"
    return (b"Subject: fair %d\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
            b"--b\nContent-Type: text/plain\n\n" % i + text +
            b"--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" +
            base64.encodebytes(blob) + b"--b--\n")


def big_mailbox(f):
    """COUNT messages written straight into the Maildir; {subject: bytes}."""
    deliver(f, "Subject: first\n\nsmall\n")  # creates the Maildir
    md = f.maildir(USER)
    out = {}
    for i in range(COUNT):
        data = message(i)
        out[b"fair %d" % i] = data
        with open(os.path.join(md, "new", f"17000001{i:02d}.M{i}P1.fairtest"), "wb") as fh:
            fh.write(data)
    return out


class Raw(LineConn):
    def until(self, tag):
        """The lines up to and with the tagged reply of `tag`."""
        lines = []
        while True:
            lines.append(self.raw_line())
            if lines[-1].startswith(tag.encode() + b" "):
                return lines

    def command(self, line, tag):
        self.send(line + "\r\n")
        return self.until(tag)

    def arrived(self):
        """What the server has sent so far, without waiting: the buffer and the socket's queue."""
        while select.select([self.s], [], [], 0)[0]:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                break
            self.buf += chunk
        return self.buf


def session(port):
    r = Raw(port, timeout=60)
    r.raw_line()
    assert r.command(f"a LOGIN {USER} {PASSWORD}", "a")[-1].startswith(b"a OK")
    assert r.command("b SELECT INBOX", "b")[-1].startswith(b"b OK")
    return r


def sessions(f):
    port = start(f)
    return session(port), session(port)


def beside(a, b, commands, what):
    """Sends `commands` pipelined on a; once the first is answered, a NOOP and a FETCH on b.

    Each of a's commands costs many slices but writes little, so a server that runs a command
    without returning to the loop answers b only after a's last tagged reply, which is then in a's
    socket already: b's replies must come while a's last one has not arrived."""
    tags = [f"p{k}" for k in range(len(commands))]
    a.send("".join(f"{t} {c}\r\n" for t, c in zip(tags, commands)))
    first = a.until(tags[0])
    assert first[-1].startswith(tags[0].encode() + b" OK"), first[-1]
    noop = b.command("n NOOP", "n")
    assert noop[-1].startswith(b"n OK"), noop
    fetched = b.command("f FETCH 1 (FLAGS RFC822.SIZE)", "f")
    assert fetched[-1].startswith(b"f OK"), fetched
    last = tags[-1].encode() + b" "
    assert last not in a.arrived(), f"b answered only after a's {what} completed"
    replies = [first] + [a.until(t) for t in tags[1:]]
    for t, lines in zip(tags, replies):
        assert lines[-1].startswith(t.encode() + b" OK"), lines[-1]
    return replies


def test_a_long_search_lets_other_sessions_answer(imap):
    big_mailbox(imap)
    a, b = sessions(imap)
    # The infos go to the cache first, so each SEARCH below costs about the same.
    assert a.command("w SEARCH LARGER 1", "w")[-1].startswith(b"w OK")
    replies = beside(a, b, ["SEARCH TEXT nosuchwordzz", "UID SEARCH BODY marker0", "SEARCH TEXT marker0"], "SEARCH")
    # The results are those of a search that ran whole: message 1 is "first", fair i is i + 2.
    expected = [str(i + 2).encode() for i in range(COUNT) if i % 7 == 0]
    assert replies[0][0] == b"* SEARCH", replies[0]
    assert replies[2][0] == b"* SEARCH " + b" ".join(expected), replies[2]
    uids = replies[1][0].split()[2:]
    assert len(uids) == len(expected), replies[1]
    a.close()
    b.close()


def test_a_long_fetch_lets_other_sessions_answer(imap):
    big_mailbox(imap)
    a, b = sessions(imap)
    # BINARY.SIZE decodes each base64 part again (it is not cached): much work, a short answer.
    replies = beside(a, b, ["FETCH 2:* (BINARY.SIZE[2])"] * 3, "FETCH")
    for lines in replies:
        sizes = [line for line in lines if re.match(rb"\* \d+ FETCH \(BINARY.SIZE\[2\] 393216\)$", line)]
        assert len(sizes) == COUNT, lines[:3]
    a.close()
    b.close()


def parse_fetches(data):
    """[(sequence number, literal)] and the tagged lines of a stream of FETCH BODY[] responses."""
    messages, tagged, at = [], [], 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        head = data[at:end]
        m = re.match(rb"\* (\d+) FETCH \(UID (\d+) BODY\[\] \{(\d+)\}$", head)
        if not m:
            tagged.append(head)
            at = end + 2
            continue
        size = int(m.group(3))
        messages.append((int(m.group(1)), data[end + 2:end + 2 + size]))
        at = end + 2 + size
        assert data[at:at + 3] == b")\r\n", data[at:at + 20]
        at += 3
    return messages, tagged


def test_a_full_fetch_read_at_full_speed_lets_others_answer_and_stays_exact(imap):
    bodies = big_mailbox(imap)
    a, b = sessions(imap)
    buf = bytearray(128 << 20)
    view = memoryview(buf)
    n = len(a.buf)
    buf[:n] = a.buf
    a.s.setblocking(False)
    b.s.setblocking(False)
    # The whole mailbox twice (50 MiB), read as fast as Python reads, straight into one buffer, in
    # one thread that also hears b: a server that never returns to the loop meanwhile answers b's
    # NOOP after both FETCHes, when far more than c1's responses have been read.
    a.send("c1 FETCH 1:* (UID BODY.PEEK[])\r\nc2 FETCH 1:* (UID BODY.PEEK[])\r\n")
    noop_sent, b_in, at_noop = False, b"", None
    while not buf[max(0, n - 256):n].endswith(b"c2 OK FETCH completed\r\n"):
        ready = select.select([a.s, b.s], [], [], 30)[0]
        assert ready, "no progress in 30 s"
        if b.s in ready:  # b first, so that its reply counts before more of a is read
            b_in += b.s.recv(65536)
            if at_noop is None and b"\r\nn OK" in b"\r\n" + b_in:
                at_noop = n
        if a.s in ready:
            k = a.s.recv_into(view[n:], 1 << 20)
            assert k, "a closed"
            n += k
            if not noop_sent:
                b.s.sendall(b"n NOOP\r\n")
                noop_sent = True
    while at_noop is None:
        assert select.select([b.s], [], [], 30)[0], "no NOOP reply"
        b_in += b.s.recv(65536)
        if b"\r\nn OK" in b"\r\n" + b_in:
            at_noop = n
    data = bytes(view[:n])
    c1_done = data.index(b"\r\nc1 OK")
    assert at_noop < c1_done, f"the NOOP was answered only after {at_noop} octets, c1 ended at {c1_done}"
    messages, tagged = parse_fetches(data)
    assert [t[:5] for t in tagged] == [b"c1 OK", b"c2 OK"], tagged
    assert [n for n, _ in messages] == list(range(1, COUNT + 2)) * 2, [n for n, _ in messages]
    for _, body in messages:
        subject = re.search(rb"Subject: (fair \d+|first)", body).group(1)
        if subject != b"first":
            assert body == crlf(bodies[subject]), subject
    a.close()
    b.close()
