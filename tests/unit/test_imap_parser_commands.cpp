// Unit tests of typed IMAP command parsing: every command, its arguments and its refusals (fed whole and byte by byte).
#include <catch.hpp>

#include <string>
#include <vector>

#include "imap_feed.hpp"

using namespace ferry::imap;
using ferry::imap::test::parse;
using namespace std::string_literals;

namespace {

template <class T>
T args_of(const ferry::Result<Command>& r) {
    if (!r.ok()) FAIL("BAD " << r.error().text);
    const T* a = std::get_if<T>(&r.value().args);
    REQUIRE(a != nullptr);
    return *a;
}

std::string error_of(std::string_view in) {
    auto r = parse(in);
    return r.ok() ? "ok" : r.error().text;
}

}  // namespace

TEST_CASE("imap commands: every command is known by name, with its verb", "[imap][imap-command]") {
    struct Row {
        const char* line;
        Verb verb;
        const char* name;
    };
    const std::vector<Row> rows = {
        {"a CAPABILITY\r\n", Verb::capability, "CAPABILITY"}, {"a noop\r\n", Verb::noop, "NOOP"},
        {"a LOGOUT\r\n", Verb::logout, "LOGOUT"}, {"a STARTTLS\r\n", Verb::starttls, "STARTTLS"},
        {"a AUTHENTICATE PLAIN\r\n", Verb::authenticate, "AUTHENTICATE"}, {"a LOGIN u p\r\n", Verb::login, "LOGIN"},
        {"a ENABLE UTF8=ACCEPT\r\n", Verb::enable, "ENABLE"}, {"a SELECT INBOX\r\n", Verb::select, "SELECT"},
        {"a EXAMINE INBOX\r\n", Verb::examine, "EXAMINE"}, {"a CREATE x\r\n", Verb::create, "CREATE"},
        {"a DELETE x\r\n", Verb::delete_, "DELETE"}, {"a RENAME x y\r\n", Verb::rename, "RENAME"},
        {"a SUBSCRIBE x\r\n", Verb::subscribe, "SUBSCRIBE"}, {"a UNSUBSCRIBE x\r\n", Verb::unsubscribe, "UNSUBSCRIBE"},
        {"a LIST \"\" *\r\n", Verb::list, "LIST"}, {"a LSUB \"\" *\r\n", Verb::lsub, "LSUB"},
        {"a NAMESPACE\r\n", Verb::namespace_, "NAMESPACE"}, {"a STATUS x (MESSAGES)\r\n", Verb::status, "STATUS"},
        {"a APPEND x {1+}\r\nx\r\n", Verb::append, "APPEND"}, {"a CHECK\r\n", Verb::check, "CHECK"},
        {"a CLOSE\r\n", Verb::close, "CLOSE"}, {"a UNSELECT\r\n", Verb::unselect, "UNSELECT"},
        {"a EXPUNGE\r\n", Verb::expunge, "EXPUNGE"}, {"a UID EXPUNGE 1:3\r\n", Verb::expunge, "UID EXPUNGE"},
        {"a SEARCH ALL\r\n", Verb::search, "SEARCH"}, {"a uid search all\r\n", Verb::search, "UID SEARCH"},
        {"a FETCH 1 FLAGS\r\n", Verb::fetch, "FETCH"}, {"a UID FETCH 1 FLAGS\r\n", Verb::fetch, "UID FETCH"},
        {"a STORE 1 FLAGS \\Seen\r\n", Verb::store, "STORE"}, {"a UID STORE 1 FLAGS ()\r\n", Verb::store, "UID STORE"},
        {"a COPY 1 x\r\n", Verb::copy, "COPY"}, {"a UID COPY 1 x\r\n", Verb::copy, "UID COPY"},
        {"a MOVE 1 x\r\n", Verb::move, "MOVE"}, {"a UID MOVE 1 x\r\n", Verb::move, "UID MOVE"},
        {"a IDLE\r\n", Verb::idle, "IDLE"}, {"a ID NIL\r\n", Verb::id, "ID"},
    };
    for (const Row& row : rows) {
        INFO(row.line);
        auto r = parse(row.line);
        REQUIRE(r.ok());
        CHECK(r.value().verb == row.verb);
        CHECK(r.value().name == row.name);
        CHECK(r.value().tag == "a");
        CHECK(r.value().uid == std::string(row.name).starts_with("UID "));
    }
}

TEST_CASE("imap commands: refusals with their BAD text", "[imap][imap-command]") {
    struct Row {
        const char* line;
        const char* text;
    };
    const std::vector<Row> rows = {
        {"a XYZZY\r\n", "Unknown command"}, {"a UID NOOP\r\n", "Unknown command"}, {"a UID\r\n", "UID needs a command"},
        {"a UID (x)\r\n", "UID needs a command"},
        {"a NOOP x\r\n", "Unexpected arguments"}, {"a CAPABILITY x\r\n", "Unexpected arguments"},
        {"a LOGIN u\r\n", "LOGIN needs a user name and a password"}, {"a LOGIN (u) p\r\n", "LOGIN needs a user name and a password"},
        {"a LOGIN u p q\r\n", "Unexpected arguments"}, {"a AUTHENTICATE\r\n", "Missing SASL mechanism"},
        {"a AUTHENTICATE \"PLAIN\"\r\n", "Missing SASL mechanism"}, {"a AUTHENTICATE PLAIN a b\r\n", "Unexpected arguments"},
        {"a ENABLE\r\n", "ENABLE needs a capability"}, {"a SELECT\r\n", "Missing mailbox name"},
        {"a SELECT x (FOO)\r\n", "Unknown SELECT parameter"}, {"a SELECT x (QRESYNC)\r\n", "QRESYNC needs parameters"},
        {"a SELECT x (QRESYNC (0 5))\r\n", "QRESYNC needs a UIDVALIDITY"}, {"a SELECT x (QRESYNC (1 0))\r\n", "QRESYNC needs a mod-sequence"},
        {"a SELECT x y\r\n", "Invalid SELECT parameters"}, {"a CREATE\r\n", "Missing mailbox name"},
        {"a CREATE x (USE (Sent))\r\n", "Invalid special-use attribute"}, {"a CREATE x y\r\n", "Invalid CREATE parameters"},
        {"a RENAME x\r\n", "RENAME needs two mailbox names"}, {"a LIST\r\n", "Missing reference name"},
        {"a LIST \"\"\r\n", "Missing mailbox pattern"}, {"a LIST \"\" ()\r\n", "Missing mailbox pattern"},
        {"a LIST (FOO) \"\" *\r\n", "Unknown LIST selection option"}, {"a LIST (RECURSIVEMATCH) \"\" *\r\n", "RECURSIVEMATCH alone"},
        {"a LIST \"\" * RETURN (FOO)\r\n", "Unknown LIST return option"}, {"a LIST \"\" * RETURN\r\n", "RETURN needs options"},
        {"a LIST \"\" * FOO\r\n", "Unexpected LIST argument"}, {"a LIST \"\" * RETURN (STATUS (FOO))\r\n", "Unknown status item"},
        {"a LSUB \"\"\r\n", "LSUB needs a reference and a pattern"}, {"a STATUS x\r\n", "Missing status items"},
        {"a STATUS x ()\r\n", "Missing status items"}, {"a STATUS x (MESSAGES FOO)\r\n", "Unknown status item"},
        {"a APPEND x\r\n", "APPEND needs the message as a literal"}, {"a APPEND x (\\Seen) \"x\" {1+}\r\nx\r\n", "Invalid date-time in APPEND"},
        {"a APPEND x (\\Recent) {1+}\r\nx\r\n", "Invalid flag in APPEND"}, {"a APPEND x \"hello\"\r\n", "Invalid date-time in APPEND"},
        {"a APPEND x {1+}\r\nx y\r\n", "APPEND needs the message as a literal"},
        {"a EXPUNGE 1\r\n", "Unexpected arguments"}, {"a UID EXPUNGE\r\n", "UID EXPUNGE needs a UID set"},
        {"a UID EXPUNGE 0\r\n", "UID EXPUNGE needs a UID set"}, {"a COPY 1\r\n", "Missing mailbox name"},
        {"a COPY x y\r\n", "Invalid sequence set"}, {"a MOVE 1:2\r\n", "Missing mailbox name"},
        {"a STORE 1 FLAGS\r\n", "Missing flags"}, {"a STORE 1 XFLAGS (\\Seen)\r\n", "Invalid STORE item"},
        {"a STORE 1 (FOO 1) FLAGS (\\Seen)\r\n", "Unknown STORE modifier"}, {"a STORE 1 +FLAGS (\"x\")\r\n", "Invalid flag"},
        {"a STORE 1 +FLAGS (\\Seen) x\r\n", "Unexpected arguments"}, {"a STORE x FLAGS ()\r\n", "Invalid sequence set"},
        {"a ID\r\n", "ID needs NIL or a list"}, {"a ID (\"a\")\r\n", "ID needs field and value pairs"},
        {"a ID (\"a\" (x))\r\n", "Invalid ID value"}, {"a ID x\r\n", "ID needs NIL or a list"},
        {"a IDLE x\r\n", "Unexpected arguments"},
    };
    for (const Row& row : rows) {
        INFO(row.line);
        CHECK(error_of(row.line) == row.text);
    }
}

TEST_CASE("imap commands: AUTHENTICATE with and without SASL-IR", "[imap][imap-command]") {
    auto a = args_of<AuthenticateArgs>(parse("a authenticate plain\r\n"));
    CHECK(a.mechanism == "PLAIN");
    CHECK_FALSE(a.initial_response);
    auto b = args_of<AuthenticateArgs>(parse("a AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ=\r\n"));
    CHECK(b.initial_response == std::optional<std::string>("AGpvZQBzZWNyZXQ="));
    auto c = args_of<AuthenticateArgs>(parse("a AUTHENTICATE EXTERNAL =\r\n"));
    CHECK(c.initial_response == std::optional<std::string>("="));
}

TEST_CASE("imap commands: LOGIN takes atoms, quoted strings and literals", "[imap][imap-command]") {
    auto a = args_of<LoginArgs>(parse("a LOGIN joe \"pa ss\\\"w\"\r\n"));
    CHECK(a.user == "joe");
    CHECK(a.password == "pa ss\"w");
    auto b = args_of<LoginArgs>(parse("a LOGIN {7}\r\njoe@x.y {4+}\r\n\xc3\xa9t\xc3\r\n"));
    CHECK(b.user == "joe@x.y");
    CHECK(b.password == "\xc3\xa9t\xc3");
    auto c = args_of<LoginArgs>(parse("a LOGIN NIL ]x\r\n"));
    CHECK(c.user == "NIL");
    CHECK(c.password == "]x");
}

TEST_CASE("imap commands: ENABLE, SELECT with CONDSTORE and QRESYNC", "[imap][imap-command]") {
    auto e = args_of<EnableArgs>(parse("a ENABLE condstore utf8=accept\r\n"));
    CHECK(e.capabilities == std::vector<std::string>{"CONDSTORE", "UTF8=ACCEPT"});
    auto s = args_of<SelectArgs>(parse("a SELECT inbox\r\n"));
    CHECK(s.mailbox == "INBOX");
    CHECK_FALSE(s.condstore);
    auto c = args_of<SelectArgs>(parse("a EXAMINE \"Sent\" (CONDSTORE)\r\n"));
    CHECK(c.mailbox == "Sent");
    CHECK(c.condstore);
    auto q = args_of<SelectArgs>(parse("a SELECT x (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:5 3:7)))\r\n"));
    REQUIRE(q.qresync);
    CHECK(q.qresync->uidvalidity == 67890007u);
    CHECK(q.qresync->modseq == 20050715194045000ull);
    REQUIRE(q.qresync->known_uids);
    CHECK(q.qresync->known_uids->ranges.size() == 3);
    REQUIRE(q.qresync->seq_match);
    CHECK(q.qresync->seq_match->first.ranges[0] == SeqRange{1, 5, false, false});
    auto q2 = args_of<SelectArgs>(parse("a SELECT x (QRESYNC (1 2))\r\n"));
    CHECK_FALSE(q2.qresync->known_uids);
}

TEST_CASE("imap commands: CREATE, DELETE, RENAME, SUBSCRIBE keep names as sent but INBOX", "[imap][imap-command]") {
    CHECK(args_of<MailboxArgs>(parse("a CREATE Archive/2026\r\n")).mailbox == "Archive/2026");
    CHECK(args_of<MailboxArgs>(parse("a DELETE \"Inbox\"\r\n")).mailbox == "INBOX");
    CHECK(args_of<MailboxArgs>(parse("a SUBSCRIBE &ZeVnLIqe-\r\n")).mailbox == "&ZeVnLIqe-");
    CHECK(args_of<MailboxArgs>(parse("a UNSUBSCRIBE {3}\r\nx y\r\n")).mailbox == "x y");
    auto u = args_of<MailboxArgs>(parse("a CREATE Sent (USE (\\Sent))\r\n"));
    CHECK(u.use == std::vector<std::string>{"\\Sent"});
    auto r = args_of<RenameArgs>(parse("a RENAME inbox \"Old Mail\"\r\n"));
    CHECK(r.from == "INBOX");
    CHECK(r.to == "Old Mail");
}

TEST_CASE("imap commands: LIST basic and LIST-EXTENDED", "[imap][imap-command]") {
    auto a = args_of<ListArgs>(parse("a LIST \"\" %\r\n"));
    CHECK(a.reference.empty());
    CHECK(a.patterns == std::vector<std::string>{"%"});
    CHECK_FALSE(a.extended);
    auto b = args_of<ListArgs>(parse("a LIST ~/Mail/ foo*\r\n"));
    CHECK(b.reference == "~/Mail/");
    CHECK(b.patterns == std::vector<std::string>{"foo*"});
    auto c = args_of<ListArgs>(parse("a LIST (SUBSCRIBED REMOTE RECURSIVEMATCH) \"\" (INBOX \"Sent*\" %/%) RETURN (CHILDREN SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))\r\n"));
    CHECK(c.extended);
    CHECK(c.subscribed);
    CHECK(c.remote);
    CHECK(c.recursive_match);
    CHECK(c.patterns == std::vector<std::string>{"INBOX", "Sent*", "%/%"});
    CHECK(c.ret_children);
    CHECK(c.ret_subscribed);
    CHECK(c.ret_special_use);
    CHECK(c.ret_status == std::vector<StatusItem>{StatusItem::messages, StatusItem::unseen, StatusItem::size});
    auto d = args_of<ListArgs>(parse("a LIST (SPECIAL-USE) \"\" *\r\n"));
    CHECK(d.special_use_sel);
    auto e = args_of<ListArgs>(parse("a LIST \"\" \"\" RETURN ()\r\n"));
    CHECK(e.patterns == std::vector<std::string>{""});
    auto l = args_of<LsubArgs>(parse("a LSUB \"#news.\" comp.mail.*\r\n"));
    CHECK(l.reference == "#news.");
    CHECK(l.pattern == "comp.mail.*");
}

TEST_CASE("imap commands: STATUS items", "[imap][imap-command]") {
    auto s = args_of<StatusArgs>(parse("a STATUS blurdybloop (UIDNEXT MESSAGES recent uidvalidity UNSEEN DELETED SIZE HIGHESTMODSEQ APPENDLIMIT)\r\n"));
    CHECK(s.mailbox == "blurdybloop");
    CHECK(s.items == std::vector<StatusItem>{StatusItem::uidnext, StatusItem::messages, StatusItem::recent, StatusItem::uidvalidity,
                                             StatusItem::unseen, StatusItem::deleted, StatusItem::size, StatusItem::highestmodseq,
                                             StatusItem::appendlimit});
}

TEST_CASE("imap commands: APPEND with flags, date-time, literal8 and MULTIAPPEND", "[imap][imap-command]") {
    auto a = args_of<AppendArgs>(parse("A003 APPEND saved-messages (\\Seen $Forwarded) \" 7-Feb-1994 21:52:25 -0800\" {11}\r\nHello Joe\r\n\r\n"));
    CHECK(a.mailbox == "saved-messages");
    REQUIRE(a.messages.size() == 1);
    CHECK(a.messages[0].flags == std::vector<std::string>{"\\Seen", "$Forwarded"});
    REQUIRE(a.messages[0].date);
    CHECK(a.messages[0].date->date == Date{1994, 2, 7});
    CHECK(a.messages[0].date->zone_minutes == -480);
    CHECK(a.messages[0].data == "Hello Joe\r\n");
    CHECK_FALSE(a.messages[0].binary);
    auto b = args_of<AppendArgs>(parse("a APPEND x () ~{3+}\r\na\0b\r\n"s));
    CHECK(b.messages[0].flags.empty());
    CHECK(b.messages[0].binary);
    CHECK(b.messages[0].data == std::string("a\0b", 3));
    auto m = args_of<AppendArgs>(parse("a APPEND x {1+}\r\n1 (\\Draft) {1+}\r\n2 \"01-Jan-2026 00:00:00 +0000\" {1+}\r\n3\r\n"));
    REQUIRE(m.messages.size() == 3);
    CHECK(m.messages[0].data == "1");
    CHECK(m.messages[1].flags == std::vector<std::string>{"\\Draft"});
    CHECK(m.messages[2].date->unix_time() == 1767225600);
}

TEST_CASE("imap commands: STORE modes, silent, UNCHANGEDSINCE", "[imap][imap-command]") {
    auto a = args_of<StoreArgs>(parse("a STORE 2:4 +FLAGS (\\Deleted)\r\n"));
    CHECK(a.mode == StoreArgs::Mode::add);
    CHECK_FALSE(a.silent);
    CHECK(a.flags == std::vector<std::string>{"\\Deleted"});
    auto b = args_of<StoreArgs>(parse("a STORE 1 -flags.silent \\Seen \\Flagged\r\n"));
    CHECK(b.mode == StoreArgs::Mode::remove);
    CHECK(b.silent);
    CHECK(b.flags == std::vector<std::string>{"\\Seen", "\\Flagged"});
    auto c = args_of<StoreArgs>(parse("a UID STORE 1:* (UNCHANGEDSINCE 320162338) FLAGS.SILENT ()\r\n"));
    CHECK(c.mode == StoreArgs::Mode::replace);
    CHECK(c.unchanged_since == std::optional<uint64_t>(320162338));
    CHECK(c.flags.empty());
    CHECK(c.set.ranges[0] == SeqRange{1, 0, false, true});
}

TEST_CASE("imap commands: COPY, MOVE, UID EXPUNGE, ID", "[imap][imap-command]") {
    auto c = args_of<CopyArgs>(parse("a COPY 2:4,$ MEETING\r\n"));
    CHECK(c.mailbox == "MEETING");
    auto m = args_of<CopyArgs>(parse("a UID MOVE $ Trash\r\n"));
    CHECK(m.set.saved);
    auto x = args_of<ExpungeArgs>(parse("a UID EXPUNGE 3000:3002\r\n"));
    REQUIRE(x.uids);
    CHECK(x.uids->ranges[0] == SeqRange{3000, 3002, false, false});
    CHECK_FALSE(args_of<ExpungeArgs>(parse("a EXPUNGE\r\n")).uids);
    auto id = args_of<IdArgs>(parse("a ID (\"name\" \"mutt\" \"version\" NIL)\r\n"));
    REQUIRE(id.fields.size() == 2);
    CHECK(id.fields[0].first == "name");
    CHECK(id.fields[0].second == std::optional<std::string>("mutt"));
    CHECK_FALSE(id.fields[1].second);
    CHECK(args_of<IdArgs>(parse("a ID nil\r\n")).fields.empty());
    CHECK(error_of("a ID (\"" + std::string(31, 'f') + "\" NIL)\r\n") == "Invalid ID field");
}
