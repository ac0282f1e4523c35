// Unit tests of Sieve comparators (RFC 4790), :matches wildcards and captures, relational operators (RFC 5231).
#include <catch.hpp>

#include <string>
#include <vector>

#include "mda/sieve/match.hpp"

using namespace ferry::sieve;

TEST_CASE("sieve match: comparators", "[sieve]") {
    CHECK(compare(Comparator::octet, "abc", "abc") == 0);
    CHECK(compare(Comparator::octet, "abc", "ABC") != 0);
    CHECK(compare(Comparator::ascii_casemap, "abc", "ABC") == 0);
    CHECK(compare(Comparator::ascii_casemap, "\xc3\xa9", "\xc3\x89") != 0);  // ASCII only
    CHECK(compare(Comparator::ascii_casemap, "a", "B") < 0);
    CHECK(compare(Comparator::octet, "a", "B") > 0);
    // i;ascii-numeric: leading digits, leading zeros ignored, no digits is positive infinity.
    CHECK(compare(Comparator::ascii_numeric, "10", "9") > 0);
    CHECK(compare(Comparator::ascii_numeric, "007", "7") == 0);
    CHECK(compare(Comparator::ascii_numeric, "12abc", "12") == 0);
    CHECK(compare(Comparator::ascii_numeric, "abc", "99999999999999999999999") > 0);
    CHECK(compare(Comparator::ascii_numeric, "abc", "xyz") == 0);
    CHECK(compare(Comparator::ascii_numeric, "0", "") < 0);
    CHECK(contains(Comparator::ascii_casemap, "Hello World", "WORLD"));
    CHECK_FALSE(contains(Comparator::octet, "Hello World", "WORLD"));
    CHECK(contains(Comparator::octet, "x", ""));
}

TEST_CASE("sieve match: :matches wildcards and escapes", "[sieve]") {
    struct Row {
        const char* value;
        const char* pattern;
        bool match;
    };
    const Row rows[] = {
        {"", "", true},          {"", "*", true},         {"a", "", false},         {"abc", "a*", true},
        {"abc", "*c", true},     {"abc", "a?c", true},    {"ac", "a?c", false},     {"abc", "*b*", true},
        {"abc", "???", true},    {"abc", "????", false},  {"a*c", "a\\*c", true},   {"abc", "a\\*c", false},
        {"a?c", "a\\?c", true},  {"a\\c", "a\\\\c", true}, {"ABC", "a*C", true},    {"aXbXc", "*x*x*", true},
        {"caf\xc3\xa9", "caf?", true},  // one character, two octets under ascii-casemap
        {"mississippi", "*ss*ss*", true}, {"mississippi", "*ss*ss*ss*", false},
    };
    for (const auto& r : rows) {
        INFO(r.value << " ~ " << r.pattern);
        Budget b{100000};
        CHECK(glob(Comparator::ascii_casemap, r.value, r.pattern, nullptr, b) == r.match);
    }
    Budget b{100000};
    CHECK_FALSE(glob(Comparator::octet, "ABC", "a*", nullptr, b));
    CHECK_FALSE(glob(Comparator::octet, "caf\xc3\xa9", "caf?", nullptr, b));  // one octet under i;octet
    CHECK(glob(Comparator::octet, "caf\xc3\xa9", "caf??", nullptr, b));
}

TEST_CASE("sieve match: captures are leftmost-shortest (RFC 5229 3.2)", "[sieve]") {
    std::vector<std::string> caps;
    Budget b{100000};
    REQUIRE(glob(Comparator::ascii_casemap, "[acme-users] [fwd] version 1.0 is out", "[*] *", &caps, b));
    REQUIRE(caps.size() == 3);
    CHECK(caps[0] == "[acme-users] [fwd] version 1.0 is out");
    CHECK(caps[1] == "acme-users");
    CHECK(caps[2] == "[fwd] version 1.0 is out");
    REQUIRE(glob(Comparator::ascii_casemap, "Ann <ann@example.org>", "*<*@*>", &caps, b));
    CHECK(caps == std::vector<std::string>{"Ann <ann@example.org>", "Ann ", "ann", "example.org"});
    REQUIRE(glob(Comparator::ascii_casemap, "abc", "?*?", &caps, b));
    CHECK(caps == std::vector<std::string>{"abc", "a", "b", "c"});
}

TEST_CASE("sieve match: the budget stops a costly pattern", "[sieve]") {
    std::string value(5000, 'a');
    Budget b{1000};
    CHECK_FALSE(glob(Comparator::octet, value, "*a*a*a*a*a*a*a*b", nullptr, b));
    CHECK(b.exceeded());
    Budget big{100000000};
    CHECK_FALSE(glob(Comparator::octet, value, "*a*a*a*a*a*a*a*b", nullptr, big));
    CHECK_FALSE(big.exceeded());
}

TEST_CASE("sieve match: relational operators", "[sieve]") {
    CHECK(relation_holds(Relation::gt, 1));
    CHECK_FALSE(relation_holds(Relation::gt, 0));
    CHECK(relation_holds(Relation::ge, 0));
    CHECK(relation_holds(Relation::lt, -1));
    CHECK(relation_holds(Relation::le, 0));
    CHECK(relation_holds(Relation::eq, 0));
    CHECK(relation_holds(Relation::ne, 1));
    CHECK_FALSE(relation_holds(Relation::ne, 0));
}
