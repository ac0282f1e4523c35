// Unit tests of the ManageSieve command scanner and verb table, at and past their limits.
#include <catch.hpp>

#include <sstream>
#include <string>

#include "mda/managesieve/command.hpp"
#include "mda/managesieve/response.hpp"
#include "mda/managesieve/server.hpp"
#include "mda/sieve/script.hpp"

using namespace ferry::managesieve;

namespace {
Limits small() {
    Limits l;
    l.max_line = 40;
    l.max_literal = 10;
    l.max_quoted = 20;
    l.max_args = 3;
    return l;
}
}  // namespace

TEST_CASE("managesieve scan: atoms, quoted strings, numbers, CRLF or LF", "[managesieve]") {
    auto s = scan_command("havespace \"a b\" 42\r\nNOOP\r\n", Limits{});
    REQUIRE(s.status == Scan::Status::command);
    CHECK(s.consumed == 20);
    CHECK(s.command.name == "HAVESPACE");
    REQUIRE(s.command.args.size() == 2);
    CHECK(s.command.args[0].kind == Arg::Kind::string);
    CHECK(s.command.args[0].text == "a b");
    CHECK(s.command.args[1].kind == Arg::Kind::number);
    CHECK(s.command.args[1].number == 42);
    s = scan_command("LOGOUT\n", Limits{});
    REQUIRE(s.status == Scan::Status::command);
    CHECK(s.consumed == 7);
    s = scan_command("NOOP \"q\\\"uo\\\\te\"\r\n", Limits{});
    REQUIRE(s.status == Scan::Status::command);
    CHECK(s.command.args[0].text == "q\"uo\\te");
    CHECK(scan_command("NOOP \"abc", Limits{}).status == Scan::Status::need_more);
    CHECK(scan_command("", Limits{}).status == Scan::Status::need_more);
}

TEST_CASE("managesieve scan: literals {n} and {n+}, whole or waiting for their octets", "[managesieve]") {
    std::string in = "PUTSCRIPT \"s\" {7+}\r\nkeep;\r\n\r\n";
    auto s = scan_command(in, Limits{});
    REQUIRE(s.status == Scan::Status::command);
    CHECK(s.consumed == in.size());
    REQUIRE(s.command.args.size() == 2);
    CHECK(s.command.args[1].text == "keep;\r\n");
    // Every prefix is incomplete: nothing is taken before the end.
    for (size_t n = 0; n < in.size(); ++n)
        CHECK(scan_command(in.substr(0, n), Limits{}).status == Scan::Status::need_more);
    s = scan_command("PUTSCRIPT {1}\r\na {2}\r\nbc\r\n", Limits{});
    REQUIRE(s.status == Scan::Status::command);
    CHECK(s.command.args[0].text == "a");
    CHECK(s.command.args[1].text == "bc");
    // A literal may hold any octet, line ends and NUL included.
    s = scan_command(std::string("CHECKSCRIPT {3+}\r\n\0\n\"\r\n", 23), Limits{});
    REQUIRE(s.status == Scan::Status::command);
    CHECK(s.command.args[0].text == std::string("\0\n\"", 3));
    s = scan_response("{4+}\r\nAAAA\r\n", Limits{});
    REQUIRE(s.status == Scan::Status::command);
    CHECK(s.command.args[0].text == "AAAA");
    s = scan_response("\"*\"\r\n", Limits{});
    REQUIRE(s.status == Scan::Status::command);
    CHECK(s.command.args[0].text == "*");
}

TEST_CASE("managesieve scan: the line limit counts CRLF, over it the rest of the line is skipped", "[managesieve]") {
    Limits l = small();
    std::string at = "NOOP " + std::string(40 - 7, 'a');  // an atom argument: 38 octets + CRLF = 40
    REQUIRE(at.size() + 2 == 40);
    l.max_quoted = 100;
    CHECK(scan_command(at + "\r\n", l).status == Scan::Status::command);
    auto s = scan_command(at + "a\r\n", l);
    CHECK(s.status == Scan::Status::error);
    CHECK(s.error == "line too long");
    CHECK(s.consumed == at.size() + 3);
    CHECK(!s.skip_line);
    // No LF within the limit: known as soon as the limit is reached, the rest is skipped later.
    CHECK(scan_command(std::string(39, 'a'), l).status == Scan::Status::need_more);
    s = scan_command(std::string(40, 'a'), l);
    CHECK(s.status == Scan::Status::error);
    CHECK(s.skip_line);
    CHECK(s.consumed == 40);
}

TEST_CASE("managesieve scan: literal, quoted and argument limits", "[managesieve]") {
    Limits l = small();
    auto s = scan_command("PUTSCRIPT \"a\" {10+}\r\n0123456789\r\n", l);
    REQUIRE(s.status == Scan::Status::command);
    CHECK(s.command.args[1].text.size() == 10);
    // One octet over: refused before any octet of it is read, to be skipped with the rest of the line.
    s = scan_command("PUTSCRIPT \"a\" {11+}\r\n", l);
    REQUIRE(s.status == Scan::Status::error);
    CHECK(s.code == "QUOTA/MAXSIZE");
    CHECK(s.discard == 11);
    CHECK(s.skip_line);
    CHECK(s.consumed == 21);
    s = scan_command("PUTSCRIPT \"a\" {4294967295+}\r\n", l);
    CHECK(s.status == Scan::Status::error);
    CHECK(s.discard == 4294967295ULL);
    CHECK(scan_command("PUTSCRIPT \"a\" {4294967296+}\r\n", l).status == Scan::Status::error);
    CHECK(scan_command("NOOP \"" + std::string(20, 'q') + "\"\r\n", l).status == Scan::Status::command);
    CHECK(scan_command("NOOP \"" + std::string(21, 'q') + "\"\r\n", l).status == Scan::Status::error);
    CHECK(scan_command("NOOP 1 2 3\r\n", l).status == Scan::Status::command);
    CHECK(scan_command("NOOP 1 2 3 4\r\n", l).status == Scan::Status::error);
    CHECK(scan_command("NOOP 1 2 3 {1+}\r\n", l).status == Scan::Status::error);
    CHECK(scan_command("NOOP 4294967295\r\n", l).status == Scan::Status::command);
    CHECK(scan_command("NOOP 4294967296\r\n", l).status == Scan::Status::error);
}

TEST_CASE("managesieve scan: syntax errors take the whole line and no more", "[managesieve]") {
    for (const char* bad : {"\r\n", " NOOP\r\n", "NOOP  \"a\"\r\n", "NOOP \"a\" \r\n", "NOOP \"a\\n\"\r\n",
                            "NOOP {3+} x\r\n", "NOOP {x}\r\n", "NOOP (a)\r\n", "\x01\r\n", "NOOP \"a\"\"b\"\r\n"}) {
        std::string in = std::string(bad) + "LOGOUT\r\n";
        auto s = scan_command(in, Limits{});
        INFO(bad);
        CHECK(s.status == Scan::Status::error);
        CHECK(s.consumed == std::string(bad).size());
    }
    CHECK(scan_response("\"a\" \"b\"\r\n", Limits{}).status == Scan::Status::error);
    CHECK(scan_response("\r\n", Limits{}).status == Scan::Status::error);
}

TEST_CASE("managesieve interpret: verbs and their arguments", "[managesieve]") {
    auto req = [](const std::string& line) { return interpret(scan_command(line + "\r\n", Limits{}).command); };
    auto r = req("putscript \"a\" \"keep;\"");
    REQUIRE(r);
    CHECK(r->verb == Verb::putscript);
    CHECK(r->strings == std::vector<std::string>{"a", "keep;"});
    r = req("HAVESPACE \"a\" 7");
    REQUIRE(r);
    CHECK(*r->number == 7);
    CHECK(req("AUTHENTICATE \"PLAIN\""));
    CHECK(req("AUTHENTICATE \"PLAIN\" \"AGEAYg==\""));
    CHECK(req("NOOP"));
    CHECK(req("NOOP \"tag\""));
    CHECK(!req("NOOP 1"));
    CHECK(!req("HAVESPACE \"a\""));
    CHECK(!req("HAVESPACE \"a\" \"7\""));
    CHECK(!req("PUTSCRIPT \"a\""));
    CHECK(!req("GETSCRIPT a"));  // an atom is not a string
    CHECK(!req("LISTSCRIPTS \"x\""));
    CHECK(!req("RENAMESCRIPT \"a\""));
    CHECK(!req("XYZZY"));
    CHECK(req("UNAUTHENTICATE"));
}

TEST_CASE("managesieve responses: quoted when plain, else a literal", "[managesieve]") {
    CHECK(string_token("a\"b\\") == "\"a\\\"b\\\\\"");
    CHECK(string_token("a\r\nb") == "{4}\r\na\r\nb");
    CHECK(string_token(std::string(1025, 'x')).rfind("{1025}\r\n", 0) == 0);
    CHECK(ok() == "OK\r\n");
    CHECK(no("QUOTA/MAXSIZE", "too big") == "NO (QUOTA/MAXSIZE) \"too big\"\r\n");
    CHECK(bye("", "line 3\r\nmore") == "BYE {12}\r\nline 3\r\nmore\r\n");
}

TEST_CASE("managesieve SIEVE capability: every extension it names compiles in mda/sieve", "[managesieve]") {
    std::istringstream words(kSieveExtensions);
    std::string ext;
    size_t n = 0;
    while (words >> ext) {
        INFO(ext);
        auto r = ferry::sieve::compile("require \"" + ext + "\";\r\n");
        CHECK(!r.error);
        ++n;
    }
    CHECK(n >= 19);
    CHECK(ferry::sieve::compile("require \"enotify\";\r\n").error);
}
