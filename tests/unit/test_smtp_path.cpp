// Unit tests of the RFC 5321 path parser: forms, quoting, source routes, literals and each length limit.
#include <catch.hpp>

#include <string>
#include <vector>

#include "common/smtp/smtp_proto.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;

namespace {

struct PathCase {
    const char* text;
    int code;             // 0: valid
    const char* mailbox;  // when valid
};

}  // namespace

TEST_CASE("smtp path: table of forms", "[smtp]") {
    const std::vector<PathCase> cases = {
        {"<a@b.test>", 0, "a@b.test"},
        {"<first.last+tag@sub.example.test>", 0, "first.last+tag@sub.example.test"},
        {"<!#$%&'*+-/=?^_`{|}~@x.test>", 0, "!#$%&'*+-/=?^_`{|}~@x.test"},
        {"<\"a b\"@x.test>", 0, "\"a b\"@x.test"},
        {"<\"a\\\"b\"@x.test>", 0, "\"a\\\"b\"@x.test"},
        {"<\"demo\"@example.test>", 0, "demo@example.test"},  // a quoted dot-string is the plain one
        {"<\"a@b\"@x.test>", 0, "\"a@b\"@x.test"},
        {"<\"a>b\"@x.test>", 0, "\"a>b\"@x.test"},
        {"<@relay.test:a@b.test>", 0, "a@b.test"},
        {"<@r1.test,@r2.test:a@b.test>", 0, "a@b.test"},
        {"<u@[127.0.0.1]>", 0, "u@[127.0.0.1]"},
        {"<u@[IPv6:::1]>", 0, "u@[IPv6:::1]"},
        {"<u@[x-tag:stuff]>", 0, "u@[x-tag:stuff]"},
        {"<u@xn--bcher-kva.test>", 0, "u@xn--bcher-kva.test"},
        {"<u@localhost>", 0, "u@localhost"},
        {"a@b.test", 553, ""},
        {"<a@b.test", 553, ""},
        {"a@b.test>", 553, ""},
        {"<a>", 553, ""},
        {"<@b.test>", 553, ""},
        {"<a@>", 553, ""},
        {"<a@@b.test>", 553, ""},
        {"<.a@b.test>", 553, ""},
        {"<a.@b.test>", 553, ""},
        {"<a..b@b.test>", 553, ""},
        {"<a b@b.test>", 553, ""},
        {"<a(b)@b.test>", 553, ""},
        {"<\"unterminated@b.test>", 553, ""},
        {"<\"ctl\x01\"@b.test>", 553, ""},
        {"<a@b..test>", 553, ""},
        {"<a@-b.test>", 553, ""},
        {"<a@b-.test>", 553, ""},
        {"<a@b.test.>", 553, ""},
        {"<a@b_c.test>", 553, ""},
        {"<a@[127.0.0.256]>", 553, ""},
        {"<a@[1.2.3]>", 553, ""},
        {"<a@[IPv6:zz::1]>", 553, ""},
        {"<a@[127.0.0.1>", 553, ""},
        {"<@r1.test,a@b.test>", 553, ""},
        {"<@r1.test,:a@b.test>", 553, ""},
        {"<@:a@b.test>", 553, ""},
        {"<@bad_host:a@b.test>", 553, ""},
        {"<r\xc3\xa9@b.test>", 553, ""},  // no SMTPUTF8 without the extension
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto r = smtp::parse_path(c.text, true);
        if (c.code == 0) {
            REQUIRE(r.ok());
            CHECK(r->mailbox() == c.mailbox);
            CHECK_FALSE(r->null);
        } else {
            REQUIRE_FALSE(r.ok());
            CHECK(r.error().code == c.code);
            CHECK(r.error().enhanced == "5.1.3");
        }
    }
}

TEST_CASE("smtp path: the null path only where allowed", "[smtp]") {
    auto mail = smtp::parse_path("<>", true);
    REQUIRE(mail.ok());
    CHECK(mail->null);
    auto rcpt = smtp::parse_path("<>", false);
    REQUIRE_FALSE(rcpt.ok());
    CHECK(rcpt.error().code == 553);
}

TEST_CASE("smtp path: local part limit 64, exactly at and one past", "[smtp]") {
    std::string at = "<" + std::string(64, 'l') + "@b.test>";
    CHECK(smtp::parse_path(at, false).ok());
    auto past = smtp::parse_path("<" + std::string(65, 'l') + "@b.test>", false);
    REQUIRE_FALSE(past.ok());
    CHECK(past.error().code == 553);
    CHECK(past.error().enhanced == "5.1.3");
    CHECK(past.error().text == "Local part of address too long");
    // A quoted local part counts its quotes: 62 characters + 2 quotes = 64.
    CHECK(smtp::parse_path("<\"" + std::string(61, 'q') + " \"@b.test>", false).ok());
    CHECK_FALSE(smtp::parse_path("<\"" + std::string(62, 'q') + " \"@b.test>", false).ok());
}

using test::domain_of_length;

TEST_CASE("smtp path: domain limit 255, exactly at and one past", "[smtp]") {
    smtp::Limits wide;
    wide.max_path = 1000;  // isolate the domain limit from the path limit
    std::string d255 = domain_of_length(255), d256 = domain_of_length(256);
    REQUIRE(d255.size() == 255);
    REQUIRE(d256.size() == 256);
    CHECK(valid_domain(d255));
    CHECK_FALSE(valid_domain(d256));
    CHECK(smtp::parse_path("<a@" + d255 + ">", false, wide).ok());
    auto past = smtp::parse_path("<a@" + d256 + ">", false, wide);
    REQUIRE_FALSE(past.ok());
    CHECK(past.error().code == 553);
    CHECK(past.error().text == "Domain of address too long");
    // Labels: 63 octets at most.
    CHECK(valid_domain(std::string(63, 'x') + ".test"));
    CHECK_FALSE(valid_domain(std::string(64, 'x') + ".test"));
}

TEST_CASE("smtp path: path limit 256, exactly at and one past", "[smtp]") {
    // "<" + 64 + "@" + domain + ">" == 256 -> domain of 189 octets.
    std::string at = "<" + std::string(64, 'l') + "@" + domain_of_length(189) + ">";
    REQUIRE(at.size() == 256);
    CHECK(smtp::parse_path(at, false).ok());
    std::string past = "<" + std::string(64, 'l') + "@" + domain_of_length(190) + ">";
    REQUIRE(past.size() == 257);
    auto r = smtp::parse_path(past, false);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == 501);
    CHECK(r.error().enhanced == "5.1.3");
    CHECK(r.error().text == "Path too long");
    // A source route counts towards the path.
    std::string routed = "<@" + domain_of_length(60) + ":" + std::string(64, 'l') + "@" + domain_of_length(128) + ">";
    REQUIRE(routed.size() == 257);
    CHECK_FALSE(smtp::parse_path(routed, false).ok());
    // Through the command parser, with a limit big enough for the line.
    smtp::Limits limits;
    limits.max_command_length = 4096;
    auto cmd = smtp::parse_command("RCPT TO:" + past, limits);
    REQUIRE_FALSE(cmd.ok());
    CHECK(cmd.error().code == 501);
    CHECK(smtp::parse_command("RCPT TO:" + at, limits).ok());
}
