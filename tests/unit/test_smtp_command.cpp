// Unit tests of the SMTP command parser, the command line splitter and reply formatting.
#include <catch.hpp>

#include <string>
#include <vector>

#include "common/smtp/smtp_proto.hpp"

using namespace ferry;

namespace {

struct Case {
    const char* line;
    int code;              // 0: parses
    const char* enhanced;  // expected enhanced status when code != 0
};

}  // namespace

TEST_CASE("smtp command: table of lines and replies", "[smtp]") {
    const std::vector<Case> cases = {
        {"EHLO client.test", 0, ""},
        {"ehlo client.test", 0, ""},
        {"HELO [127.0.0.1]", 0, ""},
        {"EHLO", 501, "5.5.4"},
        {"EHLO   ", 501, "5.5.4"},
        {"NOOP", 0, ""},
        {"NOOP anything goes", 0, ""},
        {"DATA", 0, ""},
        {"DATA x", 501, "5.5.4"},
        {"RSET now", 501, "5.5.4"},
        {"QUIT", 0, ""},
        {"", 500, "5.5.2"},
        {" MAIL FROM:<a@b.test>", 500, "5.5.2"},
        {"M@IL FROM:<a@b.test>", 500, "5.5.2"},
        {"MAIL FROM:<a@b.test>\r", 500, "5.5.2"},
        {"MAIL FROM:<a@b.test>\x01", 500, "5.5.2"},
        {"BDAT 10 LAST", 0, ""},
        {"BDAT 0", 0, ""},
        {"bdat 10 last", 0, ""},
        {"BDAT", 501, "5.5.4"},
        {"BDAT x", 501, "5.5.4"},
        {"BDAT -1", 501, "5.5.4"},
        {"BDAT 10 FIRST", 501, "5.5.4"},
        {"BDAT 99999999999999999", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test>", 0, ""},
        {"mail from:<a@b.test>", 0, ""},
        {"MAIL FROM: <a@b.test>", 0, ""},
        {"MAIL FROM:<>", 0, ""},
        {"MAIL TO:<a@b.test>", 501, "5.5.4"},
        {"MAIL FROM:", 501, "5.5.4"},
        {"MAIL", 501, "5.5.4"},
        {"MAIL FROM:a@b.test", 553, "5.1.3"},
        {"MAIL FROM:<a@b.test", 553, "5.1.3"},
        {"MAIL FROM:<a@b.test>x", 553, "5.1.3"},
        {"MAIL FROM:<a@b.test> SIZE=1000", 0, ""},
        {"MAIL FROM:<a@b.test> SIZE=", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> SIZE=12x", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> SIZE=123456789012345678901", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> SIZE=1 SIZE=2", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> BODY=8BITMIME", 0, ""},
        {"MAIL FROM:<a@b.test> body=7bit", 0, ""},
        {"MAIL FROM:<a@b.test> BODY=BINARYMIME", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> AUTH=<>", 0, ""},
        {"MAIL FROM:<a@b.test> SMTPUTF8", 0, ""},
        {"MAIL FROM:<a@b.test> SMTPUTF8=yes", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> SMTPUTF8 SMTPUTF8", 501, "5.5.4"},
        {"MAIL FROM:<r\xc3\xa9@b.test> SMTPUTF8", 0, ""},
        {"MAIL FROM:<r\xc3\xa9@b.test>", 553, "5.6.7"},
        {"MAIL FROM:<r\xc3@b.test> SMTPUTF8", 553, "5.1.3"},  // not well-formed UTF-8
        {"MAIL FROM:<a@b.test> RET=HDRS", 0, ""},
        {"MAIL FROM:<a@b.test> ret=full", 0, ""},
        {"MAIL FROM:<a@b.test> RET=BODY", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> RET", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> RET=FULL RET=HDRS", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> ENVID=QQ314159", 0, ""},
        {"MAIL FROM:<a@b.test> ENVID=a+2Bb", 0, ""},
        {"MAIL FROM:<a@b.test> ENVID=a+2", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> ENVID=a+2b", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> ENVID=a+0Ab", 501, "5.5.4"},  // decodes to a control character
        {"MAIL FROM:<a@b.test> ENVID=x ENVID=y", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> =x", 501, "5.5.4"},
        {"MAIL FROM:<a@b.test> SIZE=1=2", 501, "5.5.4"},
        {"RCPT TO:<x@example.test>", 0, ""},
        {"RCPT TO:<Postmaster>", 0, ""},
        {"RCPT TO:<>", 553, "5.1.3"},
        {"RCPT TO:<x@example.test> NOTIFY=NEVER", 0, ""},
        {"RCPT TO:<x@example.test> NOTIFY=success,delay,FAILURE", 0, ""},
        {"RCPT TO:<x@example.test> NOTIFY=NEVER,SUCCESS", 501, "5.5.4"},
        {"RCPT TO:<x@example.test> NOTIFY=SUCCESS,SUCCESS", 501, "5.5.4"},
        {"RCPT TO:<x@example.test> NOTIFY=SOMETIMES", 501, "5.5.4"},
        {"RCPT TO:<x@example.test> NOTIFY=", 501, "5.5.4"},
        {"RCPT TO:<x@example.test> NOTIFY=SUCCESS,", 501, "5.5.4"},
        {"RCPT TO:<x@example.test> NOTIFY", 501, "5.5.4"},
        {"RCPT TO:<x@example.test> ORCPT=rfc822;x@example.test", 0, ""},
        {"RCPT TO:<x@example.test> ORCPT=rfc822;x+2By@example.test NOTIFY=FAILURE", 0, ""},
        {"RCPT TO:<x@example.test> ORCPT=x@example.test", 501, "5.5.4"},
        {"RCPT TO:<x@example.test> ORCPT=rfc822;", 501, "5.5.4"},
        {"RCPT TO:<x@example.test> ORCPT=rfc_822;x@y", 501, "5.5.4"},
        {"RCPT TO:<x@example.test> ORCPT=rfc822;a+zz", 501, "5.5.4"},
        {"RCPT TO:<x@example.test> SIZE=10", 555, "5.5.4"},
        {"RCPT TO:<r\xc3\xa9@example.test>", 0, ""},  // the session decides (SMTPUTF8 or 553 5.6.7)
        {"RCPT FROM:<x@example.test>", 501, "5.5.4"},
        {"RCPT TO:<x@>", 553, "5.1.3"},
        {"RCPT TO:<x>", 553, "5.1.3"},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        auto r = smtp::parse_command(c.line);
        if (c.code == 0) {
            CHECK(r.ok());
        } else {
            REQUIRE_FALSE(r.ok());
            CHECK(r.error().code == c.code);
            CHECK(r.error().enhanced == c.enhanced);
        }
    }
}

TEST_CASE("smtp command: parsed fields", "[smtp]") {
    auto r = smtp::parse_command("mail FROM:<Joe@Example.TEST> size=42 BODY=8bitmime AUTH=joe+40example.test");
    REQUIRE(r.ok());
    CHECK(r->verb == "MAIL");
    CHECK(r->path.local == "Joe");
    CHECK(r->path.domain == "Example.TEST");
    CHECK(r->path.mailbox() == "Joe@Example.TEST");
    REQUIRE(r->params.size);
    CHECK(*r->params.size == 42);
    CHECK(r->params.body == smtp::MailParams::Body::eight_bit_mime);
    CHECK(r->params.auth.value_or("") == "joe+40example.test");

    auto null = smtp::parse_command("MAIL FROM:<>");
    REQUIRE(null.ok());
    CHECK(null->path.null);
    CHECK(null->path.mailbox().empty());

    auto pm = smtp::parse_command("RCPT TO:<postmaster>");
    REQUIRE(pm.ok());
    CHECK(pm->path.mailbox() == "Postmaster");
    CHECK(pm->path.domain.empty());

    auto big = smtp::parse_command("MAIL FROM:<a@b.test> SIZE=99999999999999999999");
    REQUIRE(big.ok());
    CHECK(*big->params.size == UINT64_MAX);  // saturated, so the size policy answers 552

    auto ehlo = smtp::parse_command("EHLO  client.test  ");
    REQUIRE(ehlo.ok());
    CHECK(ehlo->arg == "client.test");
}

TEST_CASE("smtp command: line length limit exactly at and one past", "[smtp]") {
    smtp::Limits limits;  // 512 including CRLF
    std::string at = "NOOP " + std::string(510 - 5, 'x');
    REQUIRE(at.size() + 2 == 512);
    CHECK(smtp::parse_command(at, limits).ok());
    auto past = smtp::parse_command(at + "x", limits);
    REQUIRE_FALSE(past.ok());
    CHECK(past.error().code == 500);
    CHECK(past.error().enhanced == "5.5.2");
    CHECK(past.error().text == "Line too long");
}

TEST_CASE("smtp line reader: splits, strips CR, refuses long lines once", "[smtp]") {
    smtp::LineReader lr(16);
    std::string in = "NOOP\r\nQUIT\nPART";
    auto s = lr.next(in);
    REQUIRE(s.status == smtp::LineReader::Status::line);
    CHECK(s.line == "NOOP");
    CHECK(s.consumed == 6);
    in.erase(0, s.consumed);
    s = lr.next(in);
    REQUIRE(s.status == smtp::LineReader::Status::line);
    CHECK(s.line == "QUIT");
    in.erase(0, s.consumed);
    s = lr.next(in);
    CHECK(s.status == smtp::LineReader::Status::need_more);
    CHECK(s.consumed == 0);

    SECTION("a line of max-2 octets plus CRLF is fine, one more is too long") {
        smtp::LineReader r(16);
        auto ok = r.next(std::string(14, 'a') + "\r\n");
        CHECK(ok.status == smtp::LineReader::Status::line);
        auto bad = r.next(std::string(15, 'a') + "\r\n");
        CHECK(bad.status == smtp::LineReader::Status::too_long);
        CHECK(bad.consumed == 17);
        CHECK_FALSE(r.discarding());
    }
    SECTION("an unterminated long line is reported at once and its tail is swallowed") {
        smtp::LineReader r(16);
        auto first = r.next(std::string(16, 'a'));
        CHECK(first.status == smtp::LineReader::Status::too_long);
        CHECK(first.consumed == 16);
        CHECK(r.discarding());
        auto tail = r.next("MAIL FROM:<x@y>");  // still the same long line: not a command
        CHECK(tail.status == smtp::LineReader::Status::need_more);
        CHECK(tail.consumed == 15);
        auto end = r.next("zz\r\nNOOP\r\n");
        CHECK(end.status == smtp::LineReader::Status::line);
        CHECK(end.line == "NOOP");
        CHECK(end.consumed == 10);
    }
    SECTION("fed byte by byte") {
        smtp::LineReader r(512);
        std::string buf;
        std::vector<std::string> lines;
        for (char c : std::string("EHLO a\r\nMAIL FROM:<>\r\n")) {
            buf.push_back(c);
            auto st = r.next(buf);
            if (st.status == smtp::LineReader::Status::line) lines.emplace_back(st.line);
            buf.erase(0, st.consumed);
        }
        CHECK(lines == std::vector<std::string>{"EHLO a", "MAIL FROM:<>"});
    }
}

TEST_CASE("smtp reply formatting", "[smtp]") {
    CHECK(smtp::reply(250, "2.1.0", "Ok") == "250 2.1.0 Ok\r\n");
    CHECK(smtp::reply(221, "", "Bye") == "221 Bye\r\n");
    CHECK(smtp::reply(550, "5.1.1", "no\nsuch user") == "550-5.1.1 no\r\n550 5.1.1 such user\r\n");
    CHECK(smtp::reply(500, "5.5.2", "a\rb\x01") == "500 5.5.2 a b \r\n");
    CHECK(smtp::reply_lines(250, {"mx.test", "PIPELINING", "SIZE 1000"}) ==
          "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n");
    CHECK(smtp::reply_lines(250, {"only"}) == "250 only\r\n");
    CHECK(smtp::reply(make_error(552, "5.3.4", "too big")) == "552 5.3.4 too big\r\n");
}
