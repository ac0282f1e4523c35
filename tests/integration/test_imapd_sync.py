"""ferry-imapd skips listing the Maildir when new/ and cur/ are as its last listing found them: what is renamed,
written or removed behind the index's back is still seen at the next NOOP and SELECT."""
import os
import time

from test_imapd import MESSAGE, PASSWORD, USER, Raw, deliver, start

# A moment long past: directories with this mtime are "settled", so the server trusts an unchanged mtime.
SETTLED = 1700000000


def settle(md):
    for sub in ("new", "cur"):
        os.utime(os.path.join(md, sub), (SETTLED, SETTLED))


def session(f):
    r = Raw(start(f))
    r.raw_line()
    assert r.command(f"a1 LOGIN {USER} {PASSWORD}", "a1")[-1].startswith("a1 OK")
    return r


def write_behind(md, n):
    """A message file put into new/ directly, as another delivery agent would."""
    name = f"{int(time.time())}.behind{n}.example"
    with open(os.path.join(md, "new", name), "w") as f:
        f.write(MESSAGE.replace("hello there", f"behind {n}"))
    return name


def test_changes_behind_the_index_are_seen_after_settled_listings(host):
    for i in range(3):
        deliver(host, MESSAGE.replace("hello there", f"hello {i}"))
    md = host.maildir(USER)
    settle(md)
    a = session(host)
    assert "* 3 EXISTS" in a.command("a2 SELECT INBOX", "a2")
    # Unchanged settled directories: these NOOPs may skip the listing, and report nothing new.
    for k in range(2):
        assert a.command(f"n{k} NOOP", f"n{k}") == [f"n{k} OK NOOP completed"]
    # mutt flags the first message; another agent writes one into new/: the next NOOP sees both.
    [first] = [n for n in os.listdir(os.path.join(md, "new")) if "hello 0" in open(os.path.join(md, "new", n)).read()]
    os.rename(os.path.join(md, "new", first), os.path.join(md, "cur", first.split(":")[0] + ":2,FS"))
    write_behind(md, 1)
    lines = a.command("n3 NOOP", "n3")
    assert "* 4 EXISTS" in lines, lines
    assert any(x.startswith("* 1 FETCH (FLAGS (") and "\\Flagged" in x and "\\Seen" in x for x in lines), lines
    # A second session's SELECT uses the first one's index, synced: it sees a file written since.
    settle(md)
    assert a.command("n4 NOOP", "n4")[-1].startswith("n4 OK")
    write_behind(md, 2)
    b = session(host)
    assert "* 5 EXISTS" in b.command("b2 SELECT INBOX", "b2")
    # A removal behind the index, after settling again, is an EXPUNGE at the next NOOP.
    assert "* 5 EXISTS" in a.command("n5 NOOP", "n5")
    settle(md)
    assert a.command("n6 NOOP", "n6")[-1].startswith("n6 OK")
    [gone] = [n for n in os.listdir(os.path.join(md, "cur")) if n.endswith(":2,FS")]
    os.unlink(os.path.join(md, "cur", gone))
    assert "* 1 EXPUNGE" in a.command("n7 NOOP", "n7")
    assert "* 1 EXPUNGE" in b.command("b3 NOOP", "b3")
    # Selected again by a new session after both closed: the index file is read, the folder listed.
    a.command("a9 LOGOUT", "a9")
    b.command("b9 LOGOUT", "b9")
    write_behind(md, 3)
    c = session(host)
    assert "* 5 EXISTS" in c.command("c2 SELECT INBOX", "c2")
