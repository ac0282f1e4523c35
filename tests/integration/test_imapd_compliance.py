"""ferry-imapd on the points Dovecot's imaptest compliance scripts check, each answer asserted exactly."""
from test_imapd import PASSWORD, USER, Raw, start, with_messages


def session(f):
    """A raw session, logged in."""
    r = Raw(start(f))
    assert r.raw_line().startswith(b"* OK")
    assert r.command(f"a0 LOGIN {USER} {PASSWORD}", "a0")[-1].startswith("a0 OK")
    return r


def test_a_new_keyword_is_named_in_flags_before_a_fetch_shows_it(host):
    with_messages(host, 1)
    r = session(host)
    assert "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in r.command("a1 SELECT INBOX", "a1")
    assert r.command("a2 STORE 1 +FLAGS ($hello)", "a2") == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $hello)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $hello \\*)] flags permitted",
        "* 1 FETCH (FLAGS ($hello))",
        "a2 OK STORE completed"]
    # Once named, a keyword is not announced again.
    assert r.command("a3 STORE 1 FLAGS ($hello \\Seen)", "a3") == [
        "* 1 FETCH (FLAGS (\\Seen $hello))", "a3 OK STORE completed"]
    # Another session hears of the keyword another one added before the FETCH that carries it.
    other = session(host)
    assert "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $hello)" in other.command("b1 SELECT INBOX", "b1")
    r.command("a4 STORE 1 +FLAGS.SILENT ($world)", "a4")
    assert other.command("b2 NOOP", "b2") == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $hello $world)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $hello $world \\*)] flags permitted",
        "* 1 FETCH (FLAGS (\\Seen $hello $world))",
        "b2 OK NOOP completed"]


def append(r, tag, message):
    message = message.replace("\n", "\r\n")
    r.send(f"{tag} APPEND INBOX {{{len(message.encode())}+}}\r\n")
    lines = r.command(message, tag)
    assert lines[-1].startswith(f"{tag} OK"), lines


def test_sent_dates_are_the_date_field_as_written(host):
    r = session(host)
    for i, date in enumerate(["Date: Sat, 24 Mar 2007 23:00:00 +0200\n", "Date: Sun, 25 Mar 2007 00:00:00 +0300\n",
                              "Date: 25 Mar 07 23:59 -1100\n", ""]):
        append(r, f"p{i}", f"From: a@example.org\n{date}Subject: s{i}\n\nbody\n")
    r.command("a1 SELECT INBOX", "a1")
    assert r.command("a2 SEARCH SENTBEFORE 25-Mar-2007", "a2") == ["* SEARCH 1", "a2 OK SEARCH completed"]
    assert r.command("a3 SEARCH SENTON 25-mar-2007", "a3") == ["* SEARCH 2 3", "a3 OK SEARCH completed"]
    assert r.command("a4 SEARCH SENTSINCE 25-Mar-2007", "a4") == ["* SEARCH 2 3", "a4 OK SEARCH completed"]
    assert r.command("a5 UID SEARCH NOT SENTON 25-Mar-2007", "a5") == ["* SEARCH 1 4", "a5 OK UID SEARCH completed"]


def test_from_matches_an_address_written_with_comments(host):
    r = session(host)
    append(r, "p1", "From: <user-from (comment)@ (comment) domain.org>\nSubject: s\n\nbody\n")
    append(r, "p2", "From: RealFrom <other@domain.org>\nSubject: s\n\nbody\n")
    r.command("a1 SELECT INBOX", "a1")
    assert r.command("a2 SEARCH FROM user-from@domain.org", "a2") == ["* SEARCH 1", "a2 OK SEARCH completed"]
    assert r.command("a3 SEARCH FROM realfrom", "a3") == ["* SEARCH 2", "a3 OK SEARCH completed"]
