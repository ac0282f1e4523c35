// Unit tests of the POP3 line scanner and command parser, at and past their limits.
#include <catch.hpp>

#include <string>

#include "popd/command.hpp"

using namespace ferry::pop3;

TEST_CASE("pop3 scan_line: CRLF and bare LF lines, need more, the limit counts CRLF", "[pop3]") {
    auto s = scan_line("STAT\r\nLIST\r\n", 512, false);
    CHECK(s.status == LineScan::line);
    CHECK(s.text == "STAT");
    CHECK(s.consumed == 6);
    s = scan_line("NOOP\n", 512, false);
    CHECK(s.status == LineScan::line);
    CHECK(s.text == "NOOP");
    CHECK(scan_line("STA", 512, false).status == LineScan::need_more);
    CHECK(scan_line("", 512, false).status == LineScan::need_more);

    // 10 bytes including CRLF is the most a limit of 10 accepts.
    std::string at_limit = std::string(8, 'a') + "\r\n";
    CHECK(scan_line(at_limit, 10, false).status == LineScan::line);
    std::string over = std::string(9, 'a') + "\r\n";
    s = scan_line(over, 10, false);
    CHECK(s.status == LineScan::too_long);
    CHECK(s.consumed == over.size());
    CHECK(s.line_ended);
}

TEST_CASE("pop3 scan_line: an over-long line without its end is skipped to the LF", "[pop3]") {
    std::string big(20, 'x');
    auto s = scan_line(big, 10, false);
    REQUIRE(s.status == LineScan::too_long);
    CHECK(s.consumed == 20);
    CHECK_FALSE(s.line_ended);
    s = scan_line("yyyy", 10, true);
    CHECK(s.status == LineScan::need_more);
    CHECK(s.consumed == 4);
    s = scan_line("zz\r\nSTAT\r\n", 10, true);
    CHECK(s.status == LineScan::skipped);
    CHECK(s.consumed == 4);
    s = scan_line("STAT\r\n", 10, false);
    CHECK(s.status == LineScan::line);
}

TEST_CASE("pop3 scan_line: fed one byte at a time gives the same line", "[pop3]") {
    std::string input = "RETR 1\r\n";
    std::string buf;
    LineScan s;
    for (char c : input) {
        buf += c;
        s = scan_line(buf, 512, false);
        if (s.status != LineScan::need_more) break;
    }
    CHECK(s.status == LineScan::line);
    CHECK(s.text == "RETR 1");
}

TEST_CASE("pop3 parse_command: valid commands", "[pop3]") {
    struct Case { const char* line; Verb verb; size_t args; };
    const Case cases[] = {
        {"USER demo@example.test", Verb::user, 1}, {"PASS a secret with spaces", Verb::pass, 1},
        {"STAT", Verb::stat, 0}, {"LIST", Verb::list, 0}, {"LIST 2", Verb::list, 1},
        {"RETR 1", Verb::retr, 1}, {"DELE 10", Verb::dele, 1}, {"NOOP", Verb::noop, 0},
        {"RSET", Verb::rset, 0}, {"QUIT", Verb::quit, 0}, {"TOP 1 0", Verb::top, 2},
        {"UIDL", Verb::uidl, 0}, {"UIDL 3", Verb::uidl, 1}, {"CAPA", Verb::capa, 0},
        {"STLS", Verb::stls, 0}, {"AUTH", Verb::auth, 0}, {"AUTH PLAIN", Verb::auth, 1},
        {"AUTH PLAIN AGRlbW8Ac2VjcmV0", Verb::auth, 2}, {"stat", Verb::stat, 0}, {"rEtR 1", Verb::retr, 1},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        auto r = parse_command(c.line, Limits{});
        REQUIRE(r.ok());
        CHECK(r->verb == c.verb);
        CHECK(r->args.size() == c.args);
    }
    auto pass = parse_command("PASS  two  spaces ", Limits{});
    REQUIRE(pass.ok());
    CHECK(pass->args[0] == " two  spaces ");
    auto top = parse_command("TOP 3 25", Limits{});
    REQUIRE(top.ok());
    CHECK(*top->number == 3);
    CHECK(*top->lines == 25);
    CHECK(top->keyword == "TOP");
}

TEST_CASE("pop3 parse_command: malformed commands get an error text", "[pop3]") {
    struct Case { const char* line; const char* text; };
    const Case cases[] = {
        {"", "unknown command"}, {"FOOBAR", "unknown command"}, {"APOP x y", "unknown command"},
        {"HELO", "unknown command"}, {"STAT 1", "wrong number of arguments to STAT"},
        {"RETR", "wrong number of arguments to RETR"}, {"RETR 1 2", "wrong number of arguments to RETR"},
        {"TOP 1", "wrong number of arguments to TOP"}, {"RETR 0", "invalid message number"},
        {"RETR -1", "invalid message number"}, {"RETR x", "invalid message number"},
        {"LIST 99999999999999999999", "invalid message number"}, {"TOP 1 z", "invalid line count"},
        {"PASS", "PASS needs a password"}, {"USER", "wrong number of arguments to USER"},
        {"AUTH PLAIN a b", "wrong number of arguments to AUTH"},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        auto r = parse_command(c.line, Limits{});
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().text == c.text);
    }
    std::string nul = std::string("STAT") + '\0';
    CHECK_FALSE(parse_command(nul, Limits{}).ok());
    CHECK_FALSE(parse_command("ST\x01T", Limits{}).ok());
}

TEST_CASE("pop3 parse_command: argument length limit", "[pop3]") {
    Limits l;
    l.max_argument = 10;
    CHECK(parse_command("USER " + std::string(10, 'u'), l).ok());
    auto r = parse_command("USER " + std::string(11, 'u'), l);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().text == "argument too long");
}

TEST_CASE("pop3 parse_number: digits only, no overflow", "[pop3]") {
    CHECK(*parse_number("0") == 0);
    CHECK(*parse_number("9999999999999999999") == 9999999999999999999ULL);  // 19 digits: the most taken
    CHECK_FALSE(parse_number("18446744073709551615"));
    CHECK_FALSE(parse_number(""));
    CHECK_FALSE(parse_number("+1"));
    CHECK_FALSE(parse_number(" 1"));
    CHECK_FALSE(parse_number("1x"));
}
