// Unit tests of the IMAP command reader: framing, literals, quoting, errors and limits, whole and byte by byte.
#include <catch.hpp>

#include <string>
#include <vector>

#include "imap_feed.hpp"

using namespace ferry::imap;
using ferry::imap::test::steps;
using namespace std::string_literals;

namespace {

struct Case {
    std::string input;
    std::vector<std::string> expect;
};

void check_cases(const std::vector<Case>& cases, Limits limits = {}, LiteralMode mode = LiteralMode::literal_plus) {
    for (const Case& c : cases) {
        INFO("input: " << c.input);
        CHECK(steps(c.input, limits, mode) == c.expect);
    }
}

}  // namespace

TEST_CASE("imap reader: atoms, quoted strings, lists, NIL", "[imap][imap-reader]") {
    check_cases({
        {"a1 NOOP\r\n", {"command a1 NOOP"}},
        {"a1 noop\n", {"command a1 NOOP"}},
        {"\r\n\r\nA NOOP\r\n", {"command A NOOP"}},
        {"t LOGIN joe \"se cret\"\r\n", {"command t LOGIN joe \"se cret\""}},
        {"t LOGIN \"a\\\"b\\\\c\" x\r\n", {"command t LOGIN \"a\"b\\c\" x"}},
        {"t LOGIN \"\" x\r\n", {"command t LOGIN \"\" x"}},
        {"t X (a (b c) ()) NIL\r\n", {"command t X (a (b c) ()) NIL"}},
        {"t X  a   b\r\n", {"command t X a b"}},
        {"t FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.100>)\r\n",
         {"command t FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.100>)"}},
        {"t STORE 1 +FLAGS (\\Seen $Junk)\r\n", {"command t STORE 1 +FLAGS (\\Seen $Junk)"}},
        {"t SELECT \"Gr\xc3\xbc\xc3\x9f\x65\"\r\n", {"command t SELECT \"Gr\xc3\xbc\xc3\x9f\x65\""}},
        {"a NOOP\r\nb CHECK\r\n", {"command a NOOP", "command b CHECK"}},
        {"a SELECT [Gmail]/Sent\r\n", {"command a SELECT [Gmail]/Sent"}},
        {"a CREATE x[ y\r\n", {"command a CREATE x[ y"}},
        {"a FETCH 1 BODY[HEADER.FIELDS (A\r\n", {"error a bad resync Missing ] in atom"}},
    });
}

TEST_CASE("imap reader: literals, LITERAL+ and literal8", "[imap][imap-reader]") {
    check_cases({
        {"a LOGIN {3}\r\njoe {6}\r\nsecret\r\n", {"continuation", "continuation", "command a LOGIN {joe} {secret}"}},
        {"a LOGIN {3+}\r\njoe {6+}\r\nsecret\r\n", {"command a LOGIN {joe} {secret}"}},
        {"a X {0}\r\n\r\n", {"continuation", "command a X {}"}},
        {"a X ({2+}\r\nab c)\r\n", {"command a X ({ab} c)"}},
        {"a X {4+}\r\n\r\n\r\n\r\n", {"command a X {\r\n\r\n}"}},
        {"a APPEND INBOX ~{3+}\r\na\0b\r\n"s, {"command a APPEND INBOX ~{a\0b}"s}},
        {"a APPEND INBOX ~{3}\r\nabc\r\n", {"continuation", "command a APPEND INBOX ~{abc}"}},
        {"a X {3+}\r\na\xffz\r\n", {"command a X {a\xffz}"}},
    });
}

TEST_CASE("imap reader: syntax errors are tagged when a tag was read and resynchronise", "[imap][imap-reader]") {
    check_cases({
        {"+ NOOP\r\nb NOOP\r\n", {"error  bad resync Invalid tag", "command b NOOP"}},
        {"a\r\n", {"error a bad resync Missing command"}},
        {"a N@OP\r\n", {"error a bad resync Invalid command name"}},
        {"a X \"abc\r\nb NOOP\r\n", {"error a bad resync Missing \" at the end of a quoted string", "command b NOOP"}},
        {"a X \"a\\b\"\r\n", {"error a bad resync Invalid escape in quoted string"}},
        {"a X (b\r\n", {"error a bad resync Missing )"}},
        {"a X b)\r\n", {"error a bad resync Unexpected )"}},
        {"a X \"b\"c\r\n", {"error a bad resync Missing space between arguments"}},
        {"a X {3}x\r\n", {"error a bad resync Invalid literal"}},
        {"a X {99999999999999999999}\r\n", {"error a bad resync Invalid literal"}},
        {"a X b\x01\r\n", {"error a bad resync Control character in atom"}},
        {"a X b\xc3\xa9\r\n", {"error a bad resync 8-bit data in atom"}},
        {"a X \"\xff\"\r\n", {"error a bad resync Quoted string is not UTF-8"}},
        {"a X \"\xc0\xaf\"\r\n", {"error a bad resync Quoted string is not UTF-8"}},
        {"a X \"b\0\"\r\n"s, {"error a bad resync Control character in quoted string"}},
        {"a X {3+}\r\na\0b\r\nb NOOP\r\n"s, {"error a bad resync NUL in literal (use literal8)", "command b NOOP"}},
        // The error is answered at once; the non-synchronising literal that follows is skipped.
        {"a X ) {5+}\r\n12345 more\r\nb NOOP\r\n", {"error a bad resync Unexpected )", "command b NOOP"}},
        {"a X ) {5+}\r\n12345 {2+}\r\nxy\r\nb NOOP\r\n", {"error a bad resync Unexpected )", "command b NOOP"}},
        // A synchronising literal never comes: the client saw the BAD instead of "+".
        {"a X ) {5}\r\nb NOOP\r\n", {"error a bad resync Unexpected )", "command b NOOP"}},
        {"+ X {3+}\r\nabc\r\nb NOOP\r\n", {"error  bad resync Invalid tag", "command b NOOP"}},
        {"a X ) {999999999999+}\r\n", {"error a too_big close Literal too big"}},
    });
}

TEST_CASE("imap reader: synchronising literals are refused in sync_only mode", "[imap][imap-reader]") {
    check_cases({{"a X {3+}\r\nabc\r\nb NOOP\r\n", {"error a bad resync Non-synchronizing literals are not supported", "command b NOOP"}}},
                {}, LiteralMode::sync_only);
}

TEST_CASE("imap reader: LITERAL- takes non-synchronising literals up to 4096 only", "[imap][imap-reader][limits]") {
    std::string ok = "a X {4096+}\r\n" + std::string(4096, 'x') + "\r\n";
    CHECK(steps(ok, {}, LiteralMode::literal_minus) == std::vector<std::string>{"command a X {" + std::string(4096, 'x') + "}"});
    std::string over = "a X {4097+}\r\n" + std::string(4097, 'x') + "\r\nb NOOP\r\n";
    CHECK(steps(over, {}, LiteralMode::literal_minus) ==
          std::vector<std::string>{"error a too_big resync Non-synchronizing literal too big (LITERAL-)", "command b NOOP"});
    // A synchronising literal above 4096 is fine: the client waits for "+".
    std::string sync = "a X {4097}\r\n" + std::string(4097, 'x') + "\r\n";
    CHECK(steps(sync, {}, LiteralMode::literal_minus) ==
          std::vector<std::string>{"continuation", "command a X {" + std::string(4097, 'x') + "}"});
}

TEST_CASE("imap reader: line length limit, exactly at and past it", "[imap][imap-reader][limits]") {
    Limits l;
    l.max_line = 20;
    // "a X " + 14 + CRLF = 20 bytes.
    std::string at = "a X " + std::string(14, 'y') + "\r\n";
    CHECK(steps(at, l) == std::vector<std::string>{"command a X " + std::string(14, 'y')});
    std::string past = "a X " + std::string(15, 'y') + "\r\nb NOOP\r\n";
    CHECK(steps(past, l) == std::vector<std::string>{"error a bad close Line too long"});
    // Without an LF at all the reader gives up as soon as the limit is passed.
    CHECK(steps(std::string(25, 'z'), l) == std::vector<std::string>{"error  bad close Line too long"});
    // Each line between literals has the limit for itself.
    std::string split = "a X {2+}\r\nab " + std::string(15, 'y') + "\r\n";
    CHECK(steps(split, l) == std::vector<std::string>{"command a X {ab} " + std::string(15, 'y')});
}

TEST_CASE("imap reader: literal size limit; a refused literal is never read", "[imap][imap-reader][limits]") {
    Limits l;
    l.max_literal = 10;
    CHECK(steps("a X {10}\r\n0123456789\r\n", l) == std::vector<std::string>{"continuation", "command a X {0123456789}"});
    // Synchronising: answered NO [TOOBIG] and nothing is skipped (the client does not send it).
    CHECK(steps("a X {11}\r\nb NOOP\r\n", l) == std::vector<std::string>{"error a too_big resync Literal too big", "command b NOOP"});
    // Non-synchronising: the bytes come anyway and are skipped unread.
    CHECK(steps("a X {11+}\r\n01234567890\r\nb NOOP\r\n", l) ==
          std::vector<std::string>{"error a too_big resync Literal too big", "command b NOOP"});
    // Non-synchronising and larger than a whole command may be: the connection must go.
    CHECK(steps("a X {999999999999+}\r\n", l) == std::vector<std::string>{"error a too_big close Literal too big"});
}

TEST_CASE("imap reader: total command size limit", "[imap][imap-reader][limits]") {
    Limits l;
    l.max_command = 40;
    // "a X {10+}" + CRLF = 11, literal 10, " {5+}" + CRLF... counted exactly: lines with CRLF plus literals.
    std::string at = "a X {10+}\r\n0123456789 {5+}\r\n01234\r\n";  // 11 + 10 + 7 + 5 + 2 = 35
    CHECK(steps(at, l).size() == 1);
    l.max_command = 35;
    CHECK(steps(at, l) == std::vector<std::string>{"command a X {0123456789} {01234}"});
    l.max_command = 34;
    CHECK(steps(at + "b NOOP\r\n", l) == std::vector<std::string>{"error a too_big resync Command too big", "command b NOOP"});
    l.max_command = 32;
    CHECK(steps(at + "b NOOP\r\n", l) == std::vector<std::string>{"error a too_big resync Literal too big", "command b NOOP"});
}

TEST_CASE("imap reader: nesting depth limit", "[imap][imap-reader][limits]") {
    Limits l;
    l.max_depth = 3;
    CHECK(steps("a X (((b)))\r\n", l) == std::vector<std::string>{"command a X (((b)))"});
    CHECK(steps("a X ((((b))))\r\nb NOOP\r\n", l) ==
          std::vector<std::string>{"error a bad resync Too deep nesting of parentheses", "command b NOOP"});
}

TEST_CASE("imap reader: argument count limit", "[imap][imap-reader][limits]") {
    Limits l;
    l.max_args = 5;  // a list counts as one argument, and so does each of its members
    CHECK(steps("a X 1 2 (3 4)\r\n", l) == std::vector<std::string>{"command a X 1 2 (3 4)"});
    CHECK(steps("a X 1 2 (3 4 5)\r\nb NOOP\r\n", l) == std::vector<std::string>{"error a bad resync Too many arguments", "command b NOOP"});
}

TEST_CASE("imap reader: plain lines for AUTHENTICATE and IDLE", "[imap][imap-reader]") {
    CommandReader r;
    std::string in = "a IDLE\r\nDONE\r\nb NOOP\r\n";
    std::string_view v(in);
    Step st = r.next(v);
    REQUIRE(st.kind == Step::Kind::command);
    CHECK(st.command.name == "IDLE");
    r.read_line();
    st = r.next(v);
    REQUIRE(st.kind == Step::Kind::line);
    CHECK(is_idle_done(st.line));
    CHECK(is_idle_done("done"));
    CHECK_FALSE(is_idle_done("DONE "));
    st = r.next(v);
    REQUIRE(st.kind == Step::Kind::command);
    CHECK(st.command.tag == "b");
}

TEST_CASE("imap reader: a closed reader stays closed", "[imap][imap-reader]") {
    Limits l;
    l.max_line = 10;
    CommandReader r(l);
    std::string in = std::string(30, 'x');
    std::string_view v(in);
    CHECK(r.next(v).error.action == ReadError::Action::close);
    std::string more = "a NOOP\r\n";
    std::string_view m(more);
    Step st = r.next(m);
    CHECK(st.kind == Step::Kind::error);
    CHECK(st.error.action == ReadError::Action::close);
}

TEST_CASE("imap reader: the default limits, at and past each", "[imap][imap-reader][limits]") {
    Limits d;
    CHECK(d.max_line == 65536);
    std::string at = "a X " + std::string(65536 - 6, 'y') + "\r\n";
    CHECK(steps(at).size() == 1);
    CHECK(steps("a X " + std::string(65536 - 5, 'y') + "\r\n") == std::vector<std::string>{"error a bad close Line too long"});
    // A literal is refused on its announcement alone.
    CHECK(steps("a X {" + std::to_string(d.max_literal) + "}\r\n") == std::vector<std::string>{"continuation"});
    CHECK(steps("a X {" + std::to_string(d.max_literal + 1) + "}\r\n") == std::vector<std::string>{"error a too_big resync Literal too big"});
    std::string open16(16, '('), close16(16, ')');
    CHECK(steps("a X " + open16 + close16 + "\r\n").size() == 1);
    CHECK(steps("a X (" + open16 + close16 + ")\r\n") == std::vector<std::string>{"error a bad resync Too deep nesting of parentheses"});
    std::string args;
    for (size_t i = 0; i < d.max_args; i++) args += " x";
    CHECK(steps("a X" + args + "\r\n").size() == 1);
    CHECK(steps("a X" + args + " x\r\n") == std::vector<std::string>{"error a bad resync Too many arguments"});
}
