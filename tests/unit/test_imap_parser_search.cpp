// Unit tests of IMAP SEARCH (every key of RFC 3501 and RFC 9051, RETURN, CHARSET) and FETCH item parsing.
#include <catch.hpp>

#include <string>
#include <vector>

#include "imap_feed.hpp"

using namespace ferry::imap;
using ferry::imap::test::parse;

namespace {

// A key tree as text: "OP" or "OP(arg)" or "OP[child child]".
std::string show(const SearchKey& k) {
    static const char* kNames[] = {
        "ALL", "AND", "OR", "NOT", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN", "RECENT", "NEW", "OLD", "UNANSWERED",
        "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN", "KEYWORD", "UNKEYWORD", "BCC", "BODY", "CC", "FROM", "SUBJECT",
        "TEXT", "TO", "HEADER", "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "LARGER", "SMALLER", "UID",
        "SET", "MODSEQ", "OLDER", "YOUNGER",
    };
    std::string s = kNames[int(k.op)];
    using Op = SearchKey::Op;
    switch (k.op) {
    case Op::keyword: case Op::unkeyword: case Op::bcc: case Op::body: case Op::cc: case Op::from: case Op::subject:
    case Op::text: case Op::to:
        return s + "(" + k.str + ")";
    case Op::header: return s + "(" + k.str + "," + k.str2 + ")";
    case Op::before: case Op::on: case Op::since: case Op::sentbefore: case Op::senton: case Op::sentsince:
        return s + "(" + std::to_string(k.date.year) + "-" + std::to_string(k.date.month) + "-" + std::to_string(k.date.day) + ")";
    case Op::larger: case Op::smaller: case Op::older: case Op::younger: return s + "(" + std::to_string(k.number) + ")";
    case Op::modseq: return s + "(" + k.str + "," + k.str2 + "," + std::to_string(k.number) + ")";
    case Op::uid: case Op::seqset: {
        std::string r;
        for (auto& x : k.set.ranges) r += (r.empty() ? "" : ",") + (x.lo_star ? "*" : std::to_string(x.lo)) + ":" + (x.hi_star ? "*" : std::to_string(x.hi));
        if (k.set.saved) r += "$";
        return s + "(" + r + ")";
    }
    case Op::and_: case Op::or_: case Op::not_: {
        std::string r;
        for (auto& c : k.children) r += (r.empty() ? "" : " ") + show(c);
        return s + "[" + r + "]";
    }
    default: return s;
    }
}

std::string search(std::string keys) {
    auto r = parse("a SEARCH " + keys + "\r\n");
    if (!r.ok()) return "BAD " + r.error().text;
    const auto& s = std::get<SearchArgs>(r.value().args);
    std::string out = show(s.key);
    // The top level is an AND of the keys given: show one key bare.
    if (s.key.children.size() == 1) out = show(s.key.children[0]);
    return out;
}

}  // namespace

TEST_CASE("imap SEARCH: every key", "[imap][imap-search]") {
    struct Row {
        const char* keys;
        const char* tree;
    };
    const std::vector<Row> rows = {
        {"ALL", "ALL"}, {"ANSWERED", "ANSWERED"}, {"deleted", "DELETED"}, {"DRAFT", "DRAFT"}, {"FLAGGED", "FLAGGED"},
        {"SEEN", "SEEN"}, {"RECENT", "RECENT"}, {"NEW", "NEW"}, {"OLD", "OLD"}, {"UNANSWERED", "UNANSWERED"},
        {"UNDELETED", "UNDELETED"}, {"UNDRAFT", "UNDRAFT"}, {"UNFLAGGED", "UNFLAGGED"}, {"UNSEEN", "UNSEEN"},
        {"KEYWORD $Junk", "KEYWORD($Junk)"}, {"UNKEYWORD NonJunk", "UNKEYWORD(NonJunk)"},
        {"BCC joe", "BCC(joe)"}, {"BODY \"hello world\"", "BODY(hello world)"}, {"CC {3}\r\na b", "CC(a b)"},
        {"FROM \"Smith\"", "FROM(Smith)"}, {"SUBJECT x", "SUBJECT(x)"}, {"TEXT y", "TEXT(y)"}, {"TO z", "TO(z)"},
        {"HEADER Message-ID <a@b>", "HEADER(Message-ID,<a@b>)"}, {"HEADER X-Spam \"\"", "HEADER(X-Spam,)"},
        {"BEFORE 1-Feb-1994", "BEFORE(1994-2-1)"}, {"ON \"29-Feb-2024\"", "ON(2024-2-29)"}, {"SINCE 01-jan-2026", "SINCE(2026-1-1)"},
        {"SENTBEFORE 2-Mar-2020", "SENTBEFORE(2020-3-2)"}, {"SENTON 3-Apr-2021", "SENTON(2021-4-3)"},
        {"SENTSINCE 31-Dec-1999", "SENTSINCE(1999-12-31)"}, {"LARGER 10000", "LARGER(10000)"}, {"SMALLER 0", "SMALLER(0)"},
        {"UID 1:100,200:*", "UID(1:100,200:*)"}, {"UID $", "UID($)"}, {"1:5,7", "SET(1:5,7:7)"}, {"$", "SET($)"},
        {"*", "SET(*:*)"}, {"NOT SEEN", "NOT[SEEN]"}, {"OR SEEN FLAGGED", "OR[SEEN FLAGGED]"},
        {"OR (SEEN DRAFT) NOT FROM x", "OR[AND[SEEN DRAFT] NOT[FROM(x)]]"}, {"(ALL)", "AND[ALL]"},
        {"MODSEQ 620162338", "MODSEQ(,,620162338)"}, {"MODSEQ \"/flags/\\\\draft\" all 620162338", "MODSEQ(/flags/\\draft,ALL,620162338)"},
        {"OLDER 3600", "OLDER(3600)"}, {"YOUNGER 60", "YOUNGER(60)"},
        {"FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"", "AND[FLAGGED SINCE(1994-2-1) NOT[FROM(Smith)]]"},
    };
    for (const Row& row : rows) {
        INFO(row.keys);
        CHECK(search(row.keys) == row.tree);
    }
}

TEST_CASE("imap SEARCH: refusals", "[imap][imap-search]") {
    const std::vector<std::pair<const char*, const char*>> rows = {
        {"", "BAD Missing search key"}, {"FOO", "BAD Unknown search key"}, {"KEYWORD", "BAD Invalid keyword"},
        {"KEYWORD \"x\"", "BAD Invalid keyword"}, {"FROM", "BAD Missing search string"}, {"HEADER x", "BAD HEADER needs a field name and a string"},
        {"BEFORE 30-Feb-2024", "BAD Invalid date"}, {"ON 1-Foo-2024", "BAD Invalid date"}, {"SINCE 123-Jan-2024", "BAD Invalid date"},
        {"SINCE 1-Jan-24", "BAD Invalid date"}, {"LARGER x", "BAD Invalid number"}, {"LARGER -1", "BAD Invalid number"},
        {"UID x", "BAD Invalid UID set"}, {"UID 0", "BAD Invalid UID set"}, {"NOT", "BAD Missing search key"},
        {"OR SEEN", "BAD Missing search key"}, {"()", "BAD Empty search key list"}, {"MODSEQ \"x\" foo 1", "BAD Invalid MODSEQ entry type"},
        {"OLDER 0", "BAD Invalid interval"}, {"1:x", "BAD Unknown search key"}, {"\"ALL\"", "BAD Invalid search key"},
        {"RETURN (FOO) ALL", "BAD Unknown SEARCH return option"}, {"RETURN ALL", "BAD RETURN needs options"},
        {"CHARSET", "BAD Missing charset"}, {"CHARSET UTF-8", "BAD Missing search key"},
    };
    for (auto& [keys, text] : rows) {
        INFO(keys);
        CHECK(search(keys) == text);
    }
}

TEST_CASE("imap SEARCH: nesting of NOT, OR and lists is limited", "[imap][imap-search][limits]") {
    Limits l;
    l.max_depth = 4;
    // The top-level key is at depth 1; each NOT goes one deeper.
    auto at = parse("a SEARCH NOT NOT NOT SEEN\r\n", l);
    CHECK(at.ok());
    auto past = parse("a SEARCH NOT NOT NOT NOT SEEN\r\n", l);
    REQUIRE_FALSE(past.ok());
    CHECK(past.error().text == "Search keys nested too deep");
    // A long chain with the default limit is refused rather than recursing without end.
    std::string chain;
    for (int i = 0; i < 2000; i++) chain += "NOT ";
    auto deep = parse("a SEARCH " + chain + "SEEN\r\n");
    REQUIRE_FALSE(deep.ok());
}

TEST_CASE("imap SEARCH: CHARSET and RETURN options", "[imap][imap-search]") {
    auto r = parse("a UID SEARCH RETURN (MIN MAX COUNT ALL SAVE) CHARSET utf-8 TEXT \"caf\xc3\xa9\"\r\n");
    REQUIRE(r.ok());
    const auto& s = std::get<SearchArgs>(r.value().args);
    CHECK(s.charset == std::optional<std::string>("UTF-8"));
    CHECK(s.esearch);
    CHECK((s.ret_min && s.ret_max && s.ret_count && s.ret_all && s.ret_save));
    CHECK(s.key.children[0].str == "caf\xc3\xa9");
    auto e = parse("a SEARCH RETURN () ALL\r\n");
    REQUIRE(e.ok());
    CHECK(std::get<SearchArgs>(e.value().args).ret_all);
    auto p = parse("a SEARCH ALL\r\n");
    CHECK_FALSE(std::get<SearchArgs>(p.value().args).esearch);
}

namespace {

std::string fetch(std::string items) {
    auto r = parse("a FETCH 1:* " + items + "\r\n");
    if (!r.ok()) return "BAD " + r.error().text;
    static const char* kNames[] = {"ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE", "RFC822.TEXT",
                                   "BODY", "BODYSTRUCTURE", "UID", "BODY[]", "BINARY[]", "BINARY.SIZE[]", "MODSEQ"};
    static const char* kText[] = {"", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"};
    std::string out;
    for (const FetchItem& it : std::get<FetchArgs>(r.value().args).items) {
        if (!out.empty()) out += ' ';
        out += kNames[int(it.kind)];
        if (it.peek) out += ".PEEK";
        std::string sec;
        for (uint32_t p : it.section.part) sec += (sec.empty() ? "" : ".") + std::to_string(p);
        if (it.section.text != Section::Text::none) sec += (sec.empty() ? "" : ".") + std::string(kText[int(it.section.text)]);
        for (auto& f : it.section.fields) sec += " " + f;
        if (!sec.empty()) out += "{" + sec + "}";
        if (it.partial) out += "<" + std::to_string(it.partial->first) + "." + std::to_string(it.partial->second) + ">";
    }
    return out;
}

}  // namespace

TEST_CASE("imap FETCH: macros, every item, sections and partials", "[imap][imap-fetch]") {
    const std::vector<std::pair<const char*, const char*>> rows = {
        {"ALL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE"}, {"fast", "FLAGS INTERNALDATE RFC822.SIZE"},
        {"FULL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY"},
        {"(ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE RFC822.TEXT BODY BODYSTRUCTURE UID MODSEQ)",
         "ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE RFC822.TEXT BODY BODYSTRUCTURE UID MODSEQ"},
        {"BODY[]", "BODY[]"}, {"body.peek[]<0.1024>", "BODY[].PEEK<0.1024>"}, {"BODY[1.2.3]", "BODY[]{1.2.3}"},
        {"BODY[HEADER]", "BODY[]{HEADER}"}, {"BODY[1.TEXT]", "BODY[]{1.TEXT}"}, {"BODY[3.MIME]", "BODY[]{3.MIME}"},
        {"BODY[4.2.HEADER]", "BODY[]{4.2.HEADER}"},
        {"(BODY.PEEK[HEADER.FIELDS (DATE FROM \"Subject\")])", "BODY[].PEEK{HEADER.FIELDS DATE FROM SUBJECT}"},
        {"BODY[header.fields.not (X-Spam)]<10.20>", "BODY[]{HEADER.FIELDS.NOT X-SPAM}<10.20>"},
        {"BINARY[]", "BINARY[]"}, {"BINARY.PEEK[1.2]<0.100>", "BINARY[].PEEK{1.2}<0.100>"}, {"BINARY.SIZE[3]", "BINARY.SIZE[]{3}"},
    };
    for (auto& [items, want] : rows) {
        INFO(items);
        CHECK(fetch(items) == want);
    }
}

TEST_CASE("imap FETCH: refusals", "[imap][imap-fetch]") {
    const std::vector<std::pair<const char*, const char*>> rows = {
        {"", "BAD Missing FETCH items"}, {"FOO", "BAD Invalid FETCH item"}, {"(ALL)", "BAD Invalid FETCH item"},
        {"()", "BAD Invalid FETCH items"}, {"BODY[MIME]", "BAD Invalid FETCH item"}, {"BODY[0]", "BAD Invalid FETCH item"},
        {"BODY[1.]", "BAD Invalid FETCH item"}, {"BODY[HEADER.FIELDS]", "BAD Invalid FETCH item"},
        {"BODY[HEADER.FIELDS ()]", "BAD Invalid FETCH item"}, {"BODY[TEXT.X]", "BAD Invalid FETCH item"},
        {"BODY[]<1>", "BAD Invalid FETCH item"}, {"BODY[]<0.0>", "BAD Invalid FETCH item"}, {"BINARY[HEADER]", "BAD Invalid FETCH item"},
        {"BINARY.SIZE[1]<0.1>", "BAD Invalid FETCH item"}, {"FOO[]", "BAD Invalid FETCH item"}, {"\"FLAGS\"", "BAD Invalid FETCH items"},
        {"FLAGS (FOO 1)", "BAD Unknown FETCH modifier"}, {"FLAGS (VANISHED)", "BAD Unknown FETCH modifier"},
        {"FLAGS x", "BAD Unexpected arguments"},
    };
    for (auto& [items, want] : rows) {
        INFO(items);
        CHECK(fetch(items) == want);
    }
}

TEST_CASE("imap FETCH: CHANGEDSINCE and VANISHED", "[imap][imap-fetch]") {
    auto r = parse("a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n");
    REQUIRE(r.ok());
    const auto& f = std::get<FetchArgs>(r.value().args);
    CHECK(f.changed_since == std::optional<uint64_t>(12345));
    CHECK(f.vanished);
    auto v = parse("a UID FETCH 1 FLAGS (VANISHED)\r\n");
    REQUIRE_FALSE(v.ok());
    CHECK(v.error().text == "VANISHED without CHANGEDSINCE");
    CHECK_FALSE(parse("a FETCH x FLAGS\r\n").ok());
}
