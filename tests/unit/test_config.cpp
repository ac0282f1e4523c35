// Unit tests of ferry.conf parsing: values, overrides, and errors that name file:line.
#include <catch.hpp>

#include "common/program/config.hpp"
#include "common/program/domain_map.hpp"

using namespace ferry;

TEST_CASE("config: defaults, values and program overrides") {
    auto c = Config::parse("# comment\n\nspool_dir = /tmp/s\nsmtpd.smtpd_timeout = 7s\nqmgr.smtpd_timeout = 9s\n",
                           "t.conf", "smtpd");
    REQUIRE(c.ok());
    CHECK(c->str("spool_dir") == "/tmp/s");
    CHECK(c->duration("smtpd_timeout").count() == 7);
    CHECK(c->str("plaintext_auth") == "loopback");
    CHECK(c->str("qmgr_socket") == "/run/ferry/qmgr.sock");
    CHECK_FALSE(c->is_default("spool_dir"));
    CHECK(c->dump(true) == "spool_dir = /tmp/s\nsmtpd_timeout = 7s\n");
}

TEST_CASE("config: ${key} references expand") {
    auto c = Config::parse("run_dir = /x/run\n", "t.conf", "qmgr");
    REQUIRE(c.ok());
    CHECK(c->str("qmgr_socket") == "/x/run/qmgr.sock");
    CHECK(c->str("mda_socket") == "/x/run/lmtp.sock");
}

TEST_CASE("config: ${key} references that multiply are refused, not expanded for ever") {
    // Six self-references once expanded to 600 MB (the depth limit stops only the nesting).
    std::string six;
    for (int i = 0; i < 6; ++i) six += "${hostname}";
    auto c = Config::parse("hostname = " + six + "\n", "t.conf", "smtpd");
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().what().find("\"hostname\" expands to too much") != std::string::npos);
    // A plain self-reference stops at the depth limit, as before.
    CHECK(Config::parse("hostname = ${hostname}\n", "t.conf", "smtpd").ok());
}

TEST_CASE("config: errors name file, line and reason") {
    struct Case { const char* text; const char* expect; };
    const Case cases[] = {
        {"spool_dir = /a\nno_such_key = 1\n", "t.conf:2: unknown key \"no_such_key\""},
        {"smtpd_timeout = soon\n", "t.conf:1: bad value \"soon\" for smtpd_timeout"},
        {"\n\njust words\n", "t.conf:3: expected `key = value`"},
        {"plaintext_auth = sometimes\n", "t.conf:1: bad value \"sometimes\" for plaintext_auth: expected one of never|loopback|always"},
        {"nosuchprog.spool_dir = /a\n", "t.conf:1: unknown program \"nosuchprog\""},
        {"message_size_limit = 10X\n", "t.conf:1: bad value \"10X\" for message_size_limit"},
        {"smtpd_max_recipients = -3\n", "t.conf:1: bad value \"-3\""},
        {"quota_exceeded_temporary = maybe\n", "t.conf:1: bad value \"maybe\""},
    };
    for (const auto& tc : cases) {
        auto c = Config::parse(tc.text, "t.conf", "smtpd");
        INFO(tc.text);
        REQUIRE_FALSE(c.ok());
        CHECK(c.error().text.find(tc.expect) == 0);
    }
}

TEST_CASE("config: value parsers") {
    CHECK(parse_size("10M") == 10u * 1024 * 1024);
    CHECK(parse_size("64k") == 65536u);
    CHECK(parse_size("123") == 123u);
    CHECK_FALSE(parse_size(""));
    CHECK_FALSE(parse_size("k"));
    CHECK_FALSE(parse_size("99999999999999999999G"));
    CHECK(parse_duration("5d")->count() == 5 * 86400);
    CHECK(parse_duration("30")->count() == 30);
    CHECK_FALSE(parse_duration("1y"));
    CHECK(split_list("a, b  c,,d") == std::vector<std::string>{"a", "b", "c", "d"});
    CHECK(parse_bool("yes") == true);
    CHECK(parse_bool("off") == false);
}

TEST_CASE("per-domain map files: comments, case, and the line of a bad entry", "[config]") {
    auto yes_no = [](std::string_view w) { return w == "yes" || w == "no"; };
    auto map = ferry::parse_domain_map("# a comment\n\nExample.ORG yes\nb.test  no   # trailing\n", yes_no, "domain yes|no");
    REQUIRE(map);
    CHECK(map->size() == 2);
    CHECK(map->at("example.org") == "yes");
    CHECK(map->at("b.test") == "no");
    auto bad = ferry::parse_domain_map("a.test yes\nb.test maybe\n", yes_no, "domain yes|no");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().what().find("line 2: want \"domain yes|no\"") != std::string::npos);
    CHECK_FALSE(ferry::parse_domain_map("a.test\n", yes_no, "x"));
    CHECK_FALSE(ferry::parse_domain_map("a.test yes extra\n", yes_no, "x"));
    auto missing = ferry::read_domain_map("greylist_map", "/nonexistent/map", yes_no, "x");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().what().find("greylist_map /nonexistent/map") != std::string::npos);
    CHECK(ferry::read_domain_map("greylist_map", "", yes_no, "x")->empty());
}
