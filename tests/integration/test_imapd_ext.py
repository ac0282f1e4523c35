"""ferry-imapd's extensions over raw sockets: CONDSTORE/QRESYNC (RFC 7162), ESEARCH/SEARCHRES, LIST-EXTENDED."""
import re
import subprocess

import pytest

from ferry_harness import LineConn, binary

USER = "demo@example.test"
PASSWORD = "demo-secret"
MESSAGE = "From: a@example.org\nTo: demo@example.test\nSubject: m{n}\nDate: {date}\n\nbody {n}\n"


def deliver(f, n, date="Fri, 27 Nov 2026 10:00:00 +0000"):
    for i in range(n):
        p = subprocess.run([binary("mda"), "-c", f.conf, "-d", USER],
                           input=MESSAGE.format(n=i + 1, date=date).encode(), capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr.decode()


class Imap(LineConn):
    """A logged-in raw IMAP session; `cmd` returns the untagged lines and the tagged one apart."""

    def __init__(self, f):
        running = "imapd" in f.procs and f.procs["imapd"].poll() is None
        if not running:
            f.start("imapd")
        super().__init__(f.port("imap"))
        self.n = 0
        assert self.raw_line().startswith(b"* OK")
        assert self.cmd(f"LOGIN {USER} {PASSWORD}")[1].startswith("OK")

    def cmd(self, line):
        self.n += 1
        tag = f"t{self.n}"
        self.send(f"{tag} {line}\r\n")
        lines = []
        while True:
            lines.append(self.raw_line().decode())
            if lines[-1].startswith(tag + " "):
                return lines[:-1], lines[-1][len(tag) + 1:]

    def ok(self, line):
        untagged, done = self.cmd(line)
        assert done.startswith("OK"), (line, untagged, done)
        return untagged


def select_info(lines):
    """UIDVALIDITY and HIGHESTMODSEQ from SELECT's untagged lines."""
    text = "\n".join(lines)
    return (int(re.search(r"\[UIDVALIDITY (\d+)\]", text).group(1)),
            int(re.search(r"\[HIGHESTMODSEQ (\d+)\]", text).group(1)))


def test_capabilities_and_enable(host):
    a = Imap(host)
    caps = a.ok("CAPABILITY")[0].split()
    for cap in ("CONDSTORE", "QRESYNC", "ESEARCH", "SEARCHRES", "LIST-EXTENDED", "LIST-STATUS"):
        assert cap in caps, caps
    assert a.ok("ENABLE QRESYNC X-UNKNOWN") == ["* ENABLED QRESYNC"]
    assert a.ok("ENABLE CONDSTORE") == ["* ENABLED CONDSTORE"]
    b = Imap(host)
    untagged, done = b.cmd("SELECT INBOX (QRESYNC (1 1))")
    assert done.startswith("BAD")  # QRESYNC must be enabled first (RFC 7162 section 3.2.5)


def test_qresync_sessions_see_vanished_and_modseq(host):
    deliver(host, 5)
    a, b = Imap(host), Imap(host)
    a.ok("ENABLE QRESYNC")
    uidvalidity, m0 = select_info(a.ok("SELECT INBOX"))
    b.ok("SELECT INBOX")

    assert b.ok("UID STORE 2 +FLAGS (\\Flagged)") == ["* 2 FETCH (UID 2 FLAGS (\\Flagged))"]
    assert a.ok("NOOP") == [f"* 2 FETCH (FLAGS (\\Flagged \\Recent) UID 2 MODSEQ ({m0 + 1}))"]
    m1 = m0 + 1

    b.ok("UID STORE 3:4 +FLAGS.SILENT (\\Deleted)")
    assert b.ok("UID EXPUNGE 3:4") == ["* 4 EXPUNGE", "* 3 EXPUNGE"]
    # Once QRESYNC is on, VANISHED with UIDs replaces EXPUNGE (RFC 7162 section 3.2.10).
    assert a.ok("NOOP") == ["* VANISHED 3:4"]
    b.ok("UID STORE 5 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    assert a.ok("NOOP") == ["* VANISHED 5"]
    a.ok("LOGOUT")

    c = Imap(host)
    c.ok("ENABLE QRESYNC")
    lines = c.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {m0}))")
    flagged = [line for line in lines if "FETCH" in line]
    assert lines[-len(flagged) - 1:] == ["* VANISHED (EARLIER) 3:5"] + flagged
    assert flagged == [f"* 2 FETCH (FLAGS (\\Flagged) UID 2 MODSEQ ({m1}))"]
    assert "* 2 EXISTS" in lines
    # After the flag change only the expunges are news; known UIDs narrow the answer.
    lines = c.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {m1} 1:4))")
    assert lines[0] == "* OK [CLOSED] previous mailbox closed"
    assert [line for line in lines if "VANISHED" in line or "FETCH" in line] == ["* VANISHED (EARLIER) 3:4"]
    # Another UIDVALIDITY: the client must start over, so nothing is reported.
    lines = c.ok(f"SELECT INBOX (QRESYNC ({uidvalidity + 1} {m0}))")
    assert not [line for line in lines if "VANISHED" in line or "FETCH" in line]
    untagged, done = c.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {m0} VANISHED)")
    assert done.startswith("OK") and untagged[0] == "* VANISHED (EARLIER) 3:5", untagged


def test_conditional_store_reports_modified(host):
    deliver(host, 3)
    a, b = Imap(host), Imap(host)
    a.ok("ENABLE CONDSTORE")
    _, m0 = select_info(a.ok("SELECT INBOX"))
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS (\\Answered)")
    untagged, done = a.cmd(f"UID STORE 1:2 (UNCHANGEDSINCE {m0}) +FLAGS (\\Seen)")
    assert untagged == [f"* 1 FETCH (FLAGS (\\Answered \\Recent) MODSEQ ({m0 + 1}))",
                        f"* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ ({m0 + 2}))"]
    assert done == "OK [MODIFIED 1] conditional STORE failed"
    untagged, done = a.cmd(f"STORE 3 (UNCHANGEDSINCE {m0 + 2}) +FLAGS.SILENT (\\Flagged)")
    assert untagged == [f"* 3 FETCH (MODSEQ ({m0 + 3}))"] and done.startswith("OK"), (untagged, done)
    assert a.ok(f"SEARCH MODSEQ {m0 + 2}") == [f"* SEARCH 2 3 (MODSEQ {m0 + 3})"]
    assert a.ok(f"SEARCH MODSEQ {m0 + 9}") == ["* SEARCH"]
    assert a.ok("STATUS INBOX (HIGHESTMODSEQ MESSAGES)") == [f'* STATUS "INBOX" (HIGHESTMODSEQ {m0 + 3} MESSAGES 3)']


def test_esearch_and_searchres(host):
    deliver(host, 4)
    a = Imap(host)
    a.ok("SELECT INBOX")
    a.ok("STORE 2:3 +FLAGS (\\Seen)")
    assert a.ok("UID SEARCH RETURN (MIN MAX ALL COUNT) ALL") == ['* ESEARCH (TAG "t4") UID MIN 1 MAX 4 ALL 1:4 COUNT 4']
    assert a.ok("SEARCH RETURN () SEEN") == ['* ESEARCH (TAG "t5") ALL 2:3']
    assert a.ok("SEARCH RETURN (COUNT MIN) DELETED") == ['* ESEARCH (TAG "t6") COUNT 0']
    assert a.ok("SEARCH RETURN (SAVE) UNSEEN") == []
    assert a.ok("FETCH $ (FLAGS)") == ["* 1 FETCH (FLAGS (\\Recent))", "* 4 FETCH (FLAGS (\\Recent))"]
    assert a.ok("UID SEARCH RETURN (SAVE MAX) SEEN") == ['* ESEARCH (TAG "t9") UID MAX 3']
    assert a.ok("UID SEARCH UID $") == ["* SEARCH 3"]


def test_list_extended_selection_and_return_options(host):
    deliver(host, 1)
    a = Imap(host)
    a.ok("CREATE Projects/2026")
    a.ok("SUBSCRIBE Projects/2026")
    a.ok("SUBSCRIBE Gone")
    # RECURSIVEMATCH names the parent of a subscribed child, which is not subscribed itself (RFC 5258 section 3.5).
    assert a.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "P%"') == [
        '* LIST (\\NonExistent \\HasChildren) "/" "Projects" ("CHILDINFO" ("SUBSCRIBED"))']
    assert a.ok('LIST (SUBSCRIBED) "" "P%"') == []
    subscribed = a.ok('LIST (SUBSCRIBED) "" "*"')
    assert '* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" "Gone"' in subscribed, subscribed
    assert '* LIST (\\HasNoChildren \\Subscribed) "/" "Projects/2026"' in subscribed, subscribed
    assert not [line for line in subscribed if '"Projects"' in line]
    # Several patterns, LIST-STATUS (RFC 5819): each STATUS right after its LIST line.
    assert a.ok('LIST "" ("INBOX" "Projects/%") RETURN (SUBSCRIBED STATUS (MESSAGES UIDNEXT))') == [
        '* LIST (\\HasNoChildren \\Subscribed) "/" "INBOX"', '* STATUS "INBOX" (MESSAGES 1 UIDNEXT 2)',
        '* LIST (\\HasNoChildren \\Subscribed) "/" "Projects/2026"', '* STATUS "Projects/2026" (MESSAGES 0 UIDNEXT 1)']
    special = a.ok('LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE)')
    assert sorted(special) == sorted(f'* LIST (\\HasNoChildren \\{u}) "/" "{n}"' for n, u in (
        ("Drafts", "Drafts"), ("Sent", "Sent"), ("Trash", "Trash"), ("Junk", "Junk"), ("Archive", "Archive")))


def test_sent_date_keys_read_the_date_header(host):
    deliver(host, 1, date="Mon, 2 Feb 2026 23:30:00 -0500")
    deliver(host, 1, date="Fri, 27 Nov 2026 10:00:00 +0000")
    a = Imap(host)
    a.ok("SELECT INBOX")
    assert a.ok("SEARCH SENTON 2-Feb-2026") == ["* SEARCH 1"]  # the day as written, not in UTC
    assert a.ok("SEARCH SENTBEFORE 27-Nov-2026") == ["* SEARCH 1"]
    assert a.ok("SEARCH SENTSINCE 3-Feb-2026") == ["* SEARCH 2"]
    assert a.ok("SEARCH NOT SENTSINCE 1-Jan-2020") == ["* SEARCH"]


def test_recent_belongs_to_the_first_session_and_imap4rev2_drops_it(host):
    deliver(host, 2)
    a = Imap(host)
    assert "* 2 RECENT" in a.ok("SELECT INBOX")
    b = Imap(host)
    assert "* 0 RECENT" in b.ok("SELECT INBOX")
    deliver(host, 1)
    assert a.ok("NOOP") == ["* 3 EXISTS", "* 3 RECENT"]
    assert b.ok("NOOP") == ["* 3 EXISTS", "* 0 RECENT"]
    assert a.ok("SEARCH RECENT") == ["* SEARCH 1 2 3"]
    assert b.ok("SEARCH NEW") == ["* SEARCH"] and b.ok("SEARCH OLD") == ["* SEARCH 1 2 3"]
    deliver(host, 1)
    c = Imap(host)
    assert c.ok("STATUS INBOX (RECENT MESSAGES)") == ['* STATUS "INBOX" (RECENT 1 MESSAGES 4)']
    assert "* 1 RECENT" in c.ok("EXAMINE INBOX")  # EXAMINE sees it without taking it
    assert "* 1 RECENT" in b.ok("SELECT INBOX")

    d = Imap(host)
    assert d.ok("ENABLE IMAP4rev2") == ["* ENABLED IMAP4rev2"]
    lines = d.ok("SELECT INBOX")
    assert not [line for line in lines if "RECENT" in line], lines
    assert '* LIST () "/" "INBOX"' in lines
    assert d.ok("SEARCH ALL") == ['* ESEARCH (TAG "t4") ALL 1:4']
    assert d.ok("UID SEARCH DELETED") == ['* ESEARCH (TAG "t5") UID']


def test_move_and_expunge_answer_vanished_once_qresync_is_on(host):
    deliver(host, 3)
    a = Imap(host)
    a.ok("ENABLE QRESYNC")
    a.ok("SELECT INBOX")
    lines = a.ok("UID MOVE 2 Trash")
    assert lines[-1] == "* VANISHED 2" and lines[0].startswith("* OK [COPYUID "), lines
    a.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert a.ok("EXPUNGE") == ["* VANISHED 1,3"]
