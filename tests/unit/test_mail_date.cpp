// Unit tests of reading the day of an RFC 5322 Date: field (IMAP SENTBEFORE, SENTON, SENTSINCE).
#include <catch.hpp>

#include "common/mail/date.hpp"

using ferry::mail::CivilDay;
using ferry::mail::parse_rfc5322_day;

TEST_CASE("mail date: the day of a Date: field, whatever its time and zone", "[mail]") {
    struct Case {
        const char* in;
        std::optional<CivilDay> want;
    } cases[] = {
        {"Tue, 14 Nov 2023 10:00:00 +0100", CivilDay{2023, 11, 14}},
        {" 1 Feb 1994 21:52:25 -0800", CivilDay{1994, 2, 1}},
        {"Fri, 27 nov 2026 23:59:59 -1200 (PST)", CivilDay{2026, 11, 27}},
        {"(comment) Mon,  3 Jan 99 00:00 GMT", CivilDay{1999, 1, 3}},
        {"3 Jan 05 00:00 GMT", CivilDay{2005, 1, 3}},
        {"3 Jan 105 00:00 GMT", CivilDay{2005, 1, 3}},
        {"", std::nullopt},
        {"yesterday", std::nullopt},
        {"Tue, 32 Nov 2023", std::nullopt},
        {"Tue, 14 Foo 2023", std::nullopt},
        {"Tue, 14 Nov", std::nullopt},
    };
    for (const auto& c : cases) {
        INFO(c.in);
        CHECK(parse_rfc5322_day(c.in) == c.want);
    }
    // Byte by byte: every prefix is read without a crash.
    std::string s = "Tue, 14 Nov 2023 10:00:00 +0100";
    for (size_t i = 0; i <= s.size(); ++i) (void)parse_rfc5322_day(std::string_view(s).substr(0, i));
}

TEST_CASE("mail date: the moment of a date-time, zone applied", "[mail]") {
    using ferry::mail::parse_rfc5322_time;
    struct Case {
        const char* in;
        std::optional<int64_t> want;
    } cases[] = {
        {"Tue, 14 Nov 2023 10:00:00 +0100", 1699952400},
        {"Tue, 14 Nov 2023 09:00:00 +0000", 1699952400},
        {"14 Nov 2023 01:00:00 -0800", 1699952400},
        {"Tue, 14 Nov 2023 04:00 EST", 1699952400},
        {"(a comment) Tue, 14 Nov 2023 09:00:07 GMT", 1699952407},
        {"Tue, 14 Nov 2023", std::nullopt},
        {"Tue, 14 Nov 2023 25:00:00 +0000", std::nullopt},
        {"Tue, 14 Nov 2023 10 +0000", std::nullopt},
        {"", std::nullopt},
    };
    for (const auto& c : cases) {
        INFO(c.in);
        CHECK(parse_rfc5322_time(c.in) == c.want);
    }
    // What the formatter writes reads back as the same moment.
    CHECK(parse_rfc5322_time(ferry::mail::rfc5322_date(1764300000)) == 1764300000);
    std::string s = "Tue, 14 Nov 2023 10:00:00 +0100";
    for (size_t i = 0; i <= s.size(); ++i) (void)parse_rfc5322_time(std::string_view(s).substr(0, i));
}
