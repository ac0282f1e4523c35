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
        "* 1 FETCH (FLAGS ($hello \\Recent))",
        "a2 OK STORE completed"]
    # Once named, a keyword is not announced again.
    assert r.command("a3 STORE 1 FLAGS ($hello \\Seen)", "a3") == [
        "* 1 FETCH (FLAGS (\\Seen $hello \\Recent))", "a3 OK STORE completed"]
    # Another session hears of the keyword another one added before the FETCH that carries it.
    other = session(host)
    assert "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $hello)" in other.command("b1 SELECT INBOX", "b1")
    r.command("a4 STORE 1 +FLAGS.SILENT ($world)", "a4")
    assert other.command("b2 NOOP", "b2") == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $hello $world)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $hello $world \\*)] flags permitted",
        "* 1 FETCH (FLAGS (\\Seen $hello $world))",
        "b2 OK NOOP completed"]


def append(r, tag, message, box="INBOX"):
    message = message.replace("\n", "\r\n")
    r.send(f"{tag} APPEND {box} {{{len(message.encode())}+}}\r\n")
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


def test_recent_belongs_to_the_first_session_told_of_a_message(host):
    r = session(host)
    assert r.command("a0 STATUS INBOX (RECENT)", "a0")[0] == '* STATUS "INBOX" (RECENT 0)'
    for i in range(2):
        append(r, f"p{i}", f"From: a@example.org\nSubject: s{i}\n\nbody\n")
    assert r.command("a1 STATUS INBOX (MESSAGES RECENT)", "a1")[0] == '* STATUS "INBOX" (MESSAGES 2 RECENT 2)'
    # EXAMINE shows \Recent without taking it.
    assert "* 2 RECENT" in r.command("a2 EXAMINE INBOX", "a2")
    assert r.command("a3 FETCH 1 FLAGS", "a3") == ["* 1 FETCH (FLAGS (\\Recent))", "a3 OK FETCH completed"]
    r.command("a4 CLOSE", "a4")
    assert "* 2 RECENT" in r.command("a5 SELECT INBOX", "a5")
    other = session(host)
    assert "* 0 RECENT" in other.command("b1 SELECT INBOX", "b1")
    assert r.command("a6 STATUS INBOX (RECENT)", "a6")[0] == '* STATUS "INBOX" (RECENT 0)'
    # A new message is recent in the session that hears of it first.
    append(r, "a7", "From: a@example.org\nSubject: s3\n\nbody\n")
    assert other.command("b2 NOOP", "b2") == ["* 3 EXISTS", "* 0 RECENT", "b2 OK NOOP completed"]
    assert r.command("a8 FETCH 3 FLAGS", "a8") == ["* 3 FETCH (FLAGS (\\Recent))", "a8 OK FETCH completed"]
    r.command("a9 STORE 1 +FLAGS.SILENT (\\Seen)", "a9")
    assert r.command("a10 SEARCH RECENT", "a10") == ["* SEARCH 1 2 3", "a10 OK SEARCH completed"]
    assert r.command("a11 SEARCH NEW", "a11") == ["* SEARCH 2 3", "a11 OK SEARCH completed"]
    assert other.command("b3 SEARCH OLD", "b3") == ["* SEARCH 1 2 3", "b3 OK SEARCH completed"]


def test_a_folder_created_again_has_its_messages_recent(host):
    r = session(host)
    for _ in range(2):
        assert r.command("a1 CREATE Box", "a1")[-1] == "a1 OK CREATE completed"
        append(r, "a2", "From: a@example.org\nSubject: s\n\nbody\n", "Box")
        assert "* 1 RECENT" in r.command("a3 SELECT Box", "a3")
        r.command("a4 CLOSE", "a4")
        assert r.command("a5 DELETE Box", "a5")[-1] == "a5 OK DELETE completed"


def test_select_names_the_first_unseen_message(host):
    r = session(host)
    for i in range(3):
        append(r, f"p{i}", f"From: a@example.org\nSubject: s{i}\n\nbody\n")
    r.command("a1 SELECT INBOX", "a1")
    r.command("a2 STORE 1 +FLAGS.SILENT (\\Seen)", "a2")
    assert "* OK [UNSEEN 2] first unseen" in r.command("a3 EXAMINE INBOX", "a3")
    r.command("a4 SELECT INBOX", "a4")
    r.command("a5 STORE 2:3 +FLAGS.SILENT (\\Seen)", "a5")
    assert not [line for line in r.command("a6 SELECT INBOX", "a6") if "UNSEEN" in line]


def test_lsub_percent_shows_an_unsubscribed_parent_as_noselect(host):
    r = session(host)
    for name in ("box", "box/a", "box/b", "box/b/c"):
        r.command(f"a1 CREATE {name}", "a1")
    r.command("a2 SUBSCRIBE box/a", "a2")
    r.command("a3 SUBSCRIBE box/b/c", "a3")
    assert sorted(r.command('a4 LSUB "" box/%', "a4")[:-1]) == [
        '* LSUB () "/" "box/a"', '* LSUB (\\Noselect) "/" "box/b"']
    assert [line for line in r.command('a5 LSUB "" %', "a5") if "box" in line] == ['* LSUB (\\Noselect) "/" "box"']
    assert sorted(r.command('a6 LSUB "" box/*', "a6")[:-1]) == ['* LSUB () "/" "box/a"', '* LSUB () "/" "box/b/c"']


def test_a_folder_created_again_under_its_name_has_a_new_uidvalidity(host):
    r = session(host)
    seen = set()
    for _ in range(3):
        r.command("a1 CREATE Again", "a1")
        append(r, "a2", "From: a@example.org\nSubject: s\n\nbody\n", "Again")
        status = r.command("a3 STATUS Again (UIDVALIDITY UIDNEXT)", "a3")[0]
        assert status.endswith("UIDNEXT 2)"), status
        seen.add(status)
        assert r.command("a4 DELETE Again", "a4")[-1] == "a4 OK DELETE completed"
    r.command("a5 CREATE Moved", "a5")
    append(r, "a6", "From: a@example.org\nSubject: s\n\nbody\n", "Moved")
    seen.add(r.command("a7 STATUS Moved (UIDVALIDITY UIDNEXT)", "a7")[0].replace("Moved", "Again"))
    r.command("a8 RENAME Moved Elsewhere", "a8")
    r.command("a9 CREATE Moved", "a9")
    append(r, "a10", "From: a@example.org\nSubject: s\n\nbody\n", "Moved")
    seen.add(r.command("a11 STATUS Moved (UIDVALIDITY UIDNEXT)", "a11")[0].replace("Moved", "Again"))
    assert len(seen) == 5, seen


def test_fetch_modseq_in_a_selected_mailbox_announces_highestmodseq_once(host):
    r = session(host)
    append(r, "p1", "From: a@example.org\nSubject: s\n\nbody\n")
    r.command("a1 SELECT INBOX", "a1")
    lines = r.command("a2 FETCH 1 (MODSEQ)", "a2")
    assert len(lines) == 3 and lines[0].startswith("* OK [HIGHESTMODSEQ ") and lines[0].endswith("] highest"), lines
    assert lines[1].startswith("* 1 FETCH (MODSEQ (") and lines[2] == "a2 OK FETCH completed", lines
    assert r.command("a3 FETCH 1 (MODSEQ)", "a3") == [lines[1], "a3 OK FETCH completed"]


def test_esearch_min_or_max_reports_the_modseq_of_the_message_returned(host):
    r = session(host)
    for i in range(3):
        append(r, f"p{i}", f"From: a@example.org\nSubject: s{i}\n\nbody\n")
    r.command("a1 SELECT INBOX (CONDSTORE)", "a1")
    modseq = {}
    for n in (1, 3, 2):
        line = r.command(f"s{n} STORE {n} +FLAGS (\\Seen)", f"s{n}")[0]
        modseq[n] = int(line.split("MODSEQ (")[1].split(")")[0])
    assert modseq[1] < modseq[3] < modseq[2]
    assert r.command('a2 SEARCH RETURN (MIN) 1:3 MODSEQ "/flags/\\\\seen" all 1', "a2") == [
        f'* ESEARCH (TAG "a2") MIN 1 MODSEQ {modseq[1]}', "a2 OK SEARCH completed"]
    assert r.command('a3 SEARCH RETURN (MAX) 1:3 MODSEQ "/flags/\\\\seen" all 1', "a3") == [
        f'* ESEARCH (TAG "a3") MAX 3 MODSEQ {modseq[3]}', "a3 OK SEARCH completed"]
    assert r.command('a4 SEARCH RETURN (MIN MAX) 1:3 MODSEQ 1', "a4") == [
        f'* ESEARCH (TAG "a4") MIN 1 MAX 3 MODSEQ {modseq[3]}', "a4 OK SEARCH completed"]
    assert r.command('a5 SEARCH RETURN (MIN COUNT) 1:3 MODSEQ 1', "a5") == [
        f'* ESEARCH (TAG "a5") MIN 1 COUNT 3 MODSEQ {modseq[2]}', "a5 OK SEARCH completed"]


def test_recursivematch_gives_childinfo_only_for_a_child_the_patterns_miss(host):
    r = session(host)
    for name in ("cx", "cx/a", "cx/b"):
        r.command(f"a1 CREATE {name}", "a1")
    r.command("a2 SUBSCRIBE cx/a", "a2")
    assert r.command('a3 LIST (SUBSCRIBED RECURSIVEMATCH) "" (cx)', "a3") == [
        '* LIST (\\HasChildren) "/" "cx" ("CHILDINFO" ("SUBSCRIBED"))', "a3 OK LIST completed"]
    assert r.command('a4 LIST (SUBSCRIBED RECURSIVEMATCH) "" (cx cx/a)', "a4") == [
        '* LIST (\\HasNoChildren \\Subscribed) "/" "cx/a"', "a4 OK LIST completed"]
    r.command("a5 SUBSCRIBE cx/b", "a5")
    assert r.command('a6 LIST (SUBSCRIBED RECURSIVEMATCH) "" (cx cx/a)', "a6") == [
        '* LIST (\\HasChildren) "/" "cx" ("CHILDINFO" ("SUBSCRIBED"))',
        '* LIST (\\HasNoChildren \\Subscribed) "/" "cx/a"', "a6 OK LIST completed"]


def raw_reply(r, data, tag):
    """Sends bytes; every reply line as bytes (literal octets split at CRLF too) up to the tagged one."""
    r.send(data)
    lines = []
    while not lines or not lines[-1].startswith(tag.encode() + b" "):
        lines.append(r.raw_line())
    return lines


def test_a_binary_part_appended_as_literal8_is_stored_base64_and_fetched_back_exactly(host):
    r = session(host)
    payload = b"\0-\xe4\n\r\n\n"
    message = (b"From: user@domain.org\r\nContent-Type: multipart/mixed; boundary=xx\r\n\r\n"
               b"--xx\r\n\r\ntext\r\n"
               b"--xx\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
               + payload + b"\r\n--xx--\r\n")
    assert raw_reply(r, b"a1 APPEND INBOX ~{%d+}\r\n" % len(message) + message + b"\r\n", "a1")[-1].startswith(b"a1 OK")
    r.command("a2 SELECT INBOX", "a2")
    assert raw_reply(r, b"a3 FETCH 1 (BODY.PEEK[2.MIME] BODY.PEEK[2] BODY.PEEK[1])\r\n", "a3") == [
        b"* 1 FETCH (BODY[2.MIME] {77}",
        b"Content-Type: application/octet-stream", b"Content-Transfer-Encoding: base64", b"",
        b" BODY[2] {12}", b"AC3kCg0KCg== BODY[1] {4}", b"text)", b"a3 OK FETCH completed"]
    assert raw_reply(r, b"a4 FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2])\r\n", "a4") == [
        b"* 1 FETCH (BINARY.SIZE[2] 7 BINARY[2] ~{7}", b"\0-\xe4\n", b"\n)", b"a4 OK FETCH completed"]
