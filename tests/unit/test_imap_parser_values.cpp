// Unit tests of IMAP values: sequence sets and their resolution, dates, modified UTF-7 names.
#include <catch.hpp>

#include <string>
#include <vector>

#include "imapd/imap_date.hpp"
#include "imapd/mutf7.hpp"
#include "imapd/sequence.hpp"

using namespace ferry::imap;

namespace {

std::string spans(const std::optional<std::vector<Span>>& s) {
    if (!s) return "invalid";
    std::string out;
    for (const Span& x : *s) out += (out.empty() ? "" : ",") + std::to_string(x.lo) + ":" + std::to_string(x.hi);
    return out;
}

std::string resolved(const char* set, uint32_t max, bool clamp) {
    auto s = parse_sequence_set(set);
    if (!s) return "syntax";
    return spans(resolve(*s, max, clamp));
}

}  // namespace

TEST_CASE("imap sequence sets: syntax", "[imap][imap-seq]") {
    for (const char* ok : {"1", "1:2", "*", "1:*", "*:1", "1,2,3", "4294967295", "$", "1,$", "$,1:*", "2:4,7,9:*"}) {
        INFO(ok);
        CHECK(parse_sequence_set(ok));
    }
    for (const char* bad : {"", "0", "1:0", "01", "1,", ",1", "1::2", "1:", "4294967296", "a", "1 2", "$$", "1:$", "-1"}) {
        INFO(bad);
        CHECK_FALSE(parse_sequence_set(bad));
    }
    auto s = parse_sequence_set("3:*");
    REQUIRE(s);
    CHECK(s->ranges == std::vector<SeqRange>{SeqRange{3, 0, false, true}});
}

TEST_CASE("imap sequence sets: resolution of sequence numbers and UIDs", "[imap][imap-seq]") {
    struct Row {
        const char* set;
        uint32_t max;
        bool clamp;
        const char* want;
    };
    const std::vector<Row> rows = {
        {"1:*", 5, false, "1:5"}, {"4:2", 5, false, "2:4"}, {"*:3", 5, false, "3:5"}, {"*", 5, false, "5:5"},
        {"1,3,2", 5, false, "1:3"}, {"5:7", 5, false, "invalid"}, {"*", 0, false, "invalid"}, {"1", 0, false, "invalid"},
        {"1:3,2:6,9", 10, false, "1:6,9:9"}, {"4294967295", 4294967295u, false, "4294967295:4294967295"},
        // UIDs: numbers past the highest are dropped, but n:* always includes the highest (RFC 9051 6.4.8).
        {"1:*", 0, true, ""}, {"*", 0, true, ""}, {"559:*", 100, true, "100:100"}, {"200:300", 100, true, ""},
        {"50:300", 100, true, "50:100"}, {"*:4", 10, true, "4:10"}, {"1,5,7:8", 6, true, "1:1,5:5"},
    };
    for (const Row& r : rows) {
        INFO(r.set << " max " << r.max << (r.clamp ? " uid" : " seq"));
        CHECK(resolved(r.set, r.max, r.clamp) == r.want);
    }
    auto saved = parse_sequence_set("$,10");
    std::vector<Span> last = {{2, 3}};
    CHECK(spans(resolve(*saved, 20, true, &last)) == "2:3,10:10");
    CHECK(spans(resolve(*saved, 20, true)) == "invalid");
    auto merged = resolve(*parse_sequence_set("1:3,7:9"), 10, false);
    CHECK(contains(*merged, 2));
    CHECK(contains(*merged, 9));
    CHECK_FALSE(contains(*merged, 5));
    CHECK_FALSE(contains(*merged, 10));
}

TEST_CASE("imap dates: date and date-time", "[imap][imap-date]") {
    CHECK(parse_date("1-Feb-1994") == Date{1994, 2, 1});
    CHECK(parse_date("01-feb-1994") == Date{1994, 2, 1});
    CHECK(parse_date("29-Feb-2000") == Date{2000, 2, 29});
    for (const char* bad : {"29-Feb-1900", "32-Jan-2020", "0-Jan-2020", "1-Jan-20", "1 Jan 2020", "001-Jan-2020", "1-January-2020", "", "1-Jan-2020x"}) {
        INFO(bad);
        CHECK_FALSE(parse_date(bad));
    }
    auto t = parse_date_time("17-Jul-1996 02:44:25 -0700");
    REQUIRE(t);
    CHECK(t->unix_time() == 837596665);
    auto sp = parse_date_time(" 7-Feb-1994 21:52:25 +0100");
    REQUIRE(sp);
    CHECK(sp->date.day == 7);
    CHECK(sp->zone_minutes == 60);
    CHECK(parse_date_time("01-Jan-1970 00:00:00 +0000")->unix_time() == 0);
    for (const char* bad : {"7-Feb-1994 21:52:25 +0100", "07-Feb-1994 24:00:00 +0000", "07-Feb-1994 21:60:00 +0000",
                            "07-Feb-1994 21:52:25 0100", "07-Feb-1994 21:52:25 +0160", "07-Feb-1994 21:52 +0100 ",
                            "07-Feb-1994T21:52:25 +0100"}) {
        INFO(bad);
        CHECK_FALSE(parse_date_time(bad));
    }
}

TEST_CASE("imap modified UTF-7: both ways and the edge cases", "[imap][imap-mutf7]") {
    struct Row {
        const char* utf8;
        const char* mutf7;
    };
    const std::vector<Row> rows = {
        {"INBOX", "INBOX"}, {"", ""}, {"&", "&-"}, {"a&b&&", "a&-b&-&-"}, {"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
        {"Entw\xc3\xbc" "rfe", "Entw&APw-rfe"}, {"\xc3\xa9", "&AOk-"}, {"\xf0\x9f\x93\xa7 Mail", "&2D3c5w- Mail"},
        {"\xc3\xa9&", "&AOk-&-"}, {"a\tb", "a&AAk-b"}, {"Sent Items", "Sent Items"},
    };
    for (const Row& r : rows) {
        INFO(r.utf8);
        CHECK(mutf7_encode(r.utf8) == std::optional<std::string>(r.mutf7));
        CHECK(mutf7_decode(r.mutf7) == std::optional<std::string>(r.utf8));
    }
    // Refused: 8-bit, unterminated, bad base64, encoded ASCII, leftover bits, lone surrogates,
    // two runs side by side, "/" of plain base64.
    for (const char* bad : {"\xc3\xa9", "&AOk", "&", "&AO!-", "&AGE-", "&AOl-", "&2D0-", "&3Pc-", "&AOk-&AOk-", "&U/BTFw-", "a\x01", "&Jjo"}) {
        INFO(bad);
        CHECK_FALSE(mutf7_decode(bad));
    }
    CHECK_FALSE(mutf7_encode("\xff"));
    CHECK_FALSE(mutf7_encode("\xed\xa0\x80"));  // an encoded surrogate is not UTF-8
}
