// Unit tests of LIST pattern matching: "*", "%", the delimiter and INBOX in any case.
#include <catch.hpp>

#include <string>

#include "imapd/list_match.hpp"

using namespace ferry::imap;

TEST_CASE("list patterns match as RFC 9051 section 6.3.9 says", "[imap][list]") {
    struct Case {
        const char* pattern;
        const char* name;
        bool match;
    };
    const Case cases[] = {
        {"*", "INBOX", true},
        {"*", "Archive/2026/May", true},
        {"%", "Archive", true},
        {"%", "Archive/2026", false},
        {"Archive/%", "Archive/2026", true},
        {"Archive/%", "Archive/2026/May", false},
        {"Archive/*", "Archive/2026/May", true},
        {"Archive/*", "Archive", false},
        {"Arch*", "Archive", true},
        {"A%e", "Archive", true},
        {"A%e", "Ab/ce", false},
        {"A*e", "Ab/ce", true},
        {"inbox", "INBOX", true},
        {"InBoX/%", "INBOX/Sub", true},
        {"sent", "Sent", false},  // other names keep their case
        {"Sent", "Sent", true},
        {"", "Sent", false},
        {"Sent", "Sent/x", false},
        {"%/%", "a/b", true},
        {"*%*", "abc", true},
        {"&AOQ-*", "&AOQ-rger", true},
    };
    for (const auto& c : cases) {
        INFO(c.pattern << " ~ " << c.name);
        CHECK(list_match(c.pattern, c.name) == c.match);
    }
}

TEST_CASE("a pattern full of wildcards stays fast", "[imap][list]") {
    std::string name(200, 'a');
    std::string pattern;
    for (int i = 0; i < 100; ++i) pattern += "*a";
    pattern += "b";
    CHECK_FALSE(list_match(pattern, name));
    CHECK(list_match(pattern.substr(0, pattern.size() - 1), name));
}
