// Unit tests of the Sieve lexer, parser and validator: the grammar, require, signatures, errors with line and column.
#include <catch.hpp>

#include <string>

#include "mda/sieve/script.hpp"
#include "sieve_util.hpp"

using namespace ferry::sieve;
using ferry::sieve::test::compile_error;

TEST_CASE("sieve parser: the grammar of RFC 5228", "[sieve]") {
    ParseResult p = parse(
        "# a comment\r\n"
        "require [\"fileinto\", \"copy\"];\r\n"
        "/* a bracketed\r\n comment */ IF AnyOf (header :is \"Subject\" \"a\\\"b\\\\c\\d\", size :over 2K) {\r\n"
        "  fileinto :copy \"x\";\r\n"
        "} else { keep; }\r\n");
    REQUIRE_FALSE(p.error);
    REQUIRE(p.commands.size() == 3);
    CHECK(p.commands[0].name == "require");
    CHECK(p.commands[0].args[0].strings == std::vector<std::string>{"fileinto", "copy"});
    CHECK(p.commands[0].args[0].bracketed);
    const RawNode& rif = p.commands[1];
    CHECK(rif.name == "if");
    CHECK(rif.pos.line == 4);
    CHECK(rif.pos.column == 13);
    REQUIRE(rif.tests.size() == 1);
    const RawNode& anyof = rif.tests[0];
    CHECK(anyof.name == "anyof");
    CHECK(anyof.test_list);
    REQUIRE(anyof.tests.size() == 2);
    CHECK(anyof.tests[0].args[0].tag == "is");
    CHECK(anyof.tests[0].args[2].strings[0] == "a\"b\\cd");  // "\d" is "d": the backslash goes
    CHECK(anyof.tests[1].args[1].number == 2048);
    CHECK(rif.has_block);
    CHECK(rif.block[0].args[0].tag == "copy");
    CHECK(p.commands[2].name == "else");
}

TEST_CASE("sieve parser: numbers with quantifiers", "[sieve]") {
    struct Row {
        const char* script;
        uint64_t number;
    };
    const Row rows[] = {{"if size :over 0 {}", 0},        {"if size :over 10 {}", 10},
                        {"if size :over 1k {}", 1024},    {"if size :over 3M {}", 3u << 20},
                        {"if size :over 2G {}", 2ull << 30}, {"if size :over 007 {}", 7}};
    for (const auto& r : rows) {
        ParseResult p = parse(r.script);
        INFO(r.script);
        REQUIRE_FALSE(p.error);
        CHECK(p.commands[0].tests[0].args[1].number == r.number);
    }
    CHECK(parse("if size :over 99999999999999999999 {}").error->message == "number too large");
    CHECK(parse("if size :over 17179869184G {}").error->message == "number too large");
    CHECK(parse("if size :over 10x {}").error);
}

TEST_CASE("sieve parser: multi-line strings with dot-stuffing", "[sieve]") {
    ParseResult p = parse("require \"reject\";\nreject text: # why\nline one\n..dotted\n\n.\n;\nkeep;\n");
    REQUIRE_FALSE(p.error);
    CHECK(p.commands[1].args[0].strings[0] == "line one\r\n.dotted\r\n\r\n");
    CHECK(p.commands[2].name == "keep");
    CHECK(p.commands[2].pos.line == 8);
    ParseResult crlf = parse("reject text:\r\nA\r\n.\r\n;");
    REQUIRE_FALSE(crlf.error);
    CHECK(crlf.commands[0].args[0].strings[0] == "A\r\n");
}

TEST_CASE("sieve parser: syntax errors name line and column", "[sieve]") {
    struct Row {
        const char* script;
        const char* error;
    };
    const Row rows[] = {
        {"keep;\nkeep\n}", "line 3, column 1: expected ';' or '{' after the arguments of keep, found '}'"},
        {"keep;\n\n  stop", "line 3, column 7: expected ';' or '{' after the arguments of stop, found the end of the script"},
        {"if true {\n keep;\n", "line 3, column 1: expected '}' or a command, found the end of the script"},
        {"keep;\n}", "line 2, column 1: expected a command, found '}'"},
        {"fileinto \"a", "line 1, column 10: unterminated string"},
        {"keep; /* open", "line 1, column 7: unterminated /* comment"},
        {"if header [\"a\" \"b\"] {}", "line 1, column 16: expected ',' or ']' in a string list, found a string"},
        {"if header [\"a\", 1] \"b\" {}", "line 1, column 17: expected a string in a string list, found a number"},
        {"if anyof (true false) {}", "line 1, column 11: 'true' takes no test"},  // a test may take a test
        {"if anyof (true; false) {}", "line 1, column 15: expected ',' or ')' in a test list, found ';'"},
        {"if anyof (true, ) {}", "line 1, column 17: expected a test, found ')'"},
        {"keep;\n  @", "line 2, column 3: unexpected character '@'"},
        {"reject text:\nno end\n", "line 1, column 8: unterminated text: string (a line with a single '.' ends it)"},
        {"reject text: x\n.\n;", "line 1, column 14: expected a line end after text:"},
    };
    for (const auto& r : rows) {
        INFO(r.script);
        CHECK(compile_error(r.script) == r.error);
    }
}

TEST_CASE("sieve validator: require, signatures and tags", "[sieve]") {
    struct Row {
        const char* script;
        const char* error;
    };
    const Row rows[] = {
        {"fileinto \"x\";", "line 1, column 1: 'fileinto' needs require \"fileinto\""},
        {"require \"fileinto\";\nfileinto :copy \"x\";", "line 2, column 10: ':copy' needs require \"copy\""},
        {"require \"frobnicate\";", "line 1, column 9: unknown extension 'frobnicate'"},
        {"keep;\nrequire \"fileinto\";", "line 2, column 1: require must come before any other command"},
        {"if true { require \"fileinto\"; }", "line 1, column 11: require must come before any other command"},
        {"frob;", "line 1, column 1: unknown command 'frob'"},
        {"if frob { keep; }", "line 1, column 4: unknown test 'frob'"},
        {"if keep { keep; }", "line 1, column 4: 'keep' is a command, not a test"},
        {"header \"a\" \"b\";", "line 1, column 1: 'header' is a test, not a command"},
        {"keep \"x\";", "line 1, column 1: 'keep' takes 0 positional arguments, not 1"},
        {"require \"fileinto\"; fileinto;", "line 1, column 21: 'fileinto' takes 1 positional argument, not 0"},
        {"require \"fileinto\"; fileinto [\"a\", \"b\"];", "line 1, column 30: 'fileinto' needs a string here"},
        {"redirect 5;", "line 1, column 10: 'redirect' needs a string here"},
        {"if header :frob \"a\" \"b\" {}", "line 1, column 11: 'header' has no tag ':frob'"},
        {"if header :is :contains \"a\" \"b\" {}", "line 1, column 15: ':contains' conflicts with an earlier tag of 'header'"},
        {"if header :is :is \"a\" \"b\" {}", "line 1, column 15: ':is' given twice"},
        {"if header \"a\" :is \"b\" {}", "line 1, column 15: tag ':is' after positional arguments of 'header'"},
        {"if header :comparator \"i;frob\" \"a\" \"b\" {}", "line 1, column 23: unknown comparator 'i;frob'"},
        {"if header :comparator \"i;ascii-numeric\" \"a\" \"b\" {}",
         "line 1, column 23: comparator i;ascii-numeric needs require \"comparator-i;ascii-numeric\""},
        {"require \"comparator-i;ascii-numeric\";\nif header :contains :comparator \"i;ascii-numeric\" \"a\" \"1\" {}",
         "line 2, column 4: comparator i;ascii-numeric does not support :contains or :matches"},
        {"if header :comparator \"a\" {}", "line 1, column 4: 'header' takes 2 positional arguments, not 0"},
        {"if header :count \"gt\" \"a\" \"1\" {}", "line 1, column 11: ':count' needs require \"relational\""},
        {"require \"relational\"; if header :value \"xx\" \"a\" \"1\" {}",
         "line 1, column 40: unknown relational operator 'xx'"},
        {"if address :user \"from\" \"a\" {}", "line 1, column 12: ':user' needs require \"subaddress\""},
        {"if size 5 {}", "line 1, column 4: size needs :over or :under"},
        {"if size :over :under 5 {}", "line 1, column 15: ':under' conflicts with an earlier tag of 'size'"},
        {"if true keep;", "line 1, column 4: 'true' takes no test"},
        {"if header :comparator 5 \"a\" \"b\" {}", "line 1, column 11: ':comparator' needs a string after it"},
        {"if true;", "line 1, column 1: 'if' needs a block"},
        {"keep { }", "line 1, column 1: 'keep' takes no block"},
        {"if (true) {}", "line 1, column 1: 'if' takes one test"},
        {"if allof true {}", "line 1, column 4: 'allof' takes a test list in ( )"},
        {"if not (true, false) {}", "line 1, column 4: 'not' takes one test"},
        {"elsif true {}", "line 1, column 1: 'elsif' must follow 'if' or 'elsif'"},
        {"keep;\nelse { }", "line 2, column 1: 'else' must follow 'if' or 'elsif'"},
        {"require \"envelope\"; if envelope \"frob\" \"a\" {}", "line 1, column 33: unknown envelope part 'frob'"},
        {"require \"date\"; if date \"date\" \"century\" \"1\" {}", "line 1, column 32: unknown date part 'century'"},
        {"require \"date\"; if currentdate :zone \"0100\" \"year\" \"1\" {}",
         "line 1, column 38: a time zone is +hhmm or -hhmm"},
        {"require \"variables\"; set \"1a\" \"x\";", "line 1, column 26: bad variable name '1a'"},
        {"require \"variables\"; set :lower :upper \"a\" \"x\";",
         "line 1, column 33: ':upper' conflicts with an earlier tag of 'set'"},
        {"require \"editheader\"; addheader \"Bad Name\" \"x\";", "line 1, column 33: bad header field name 'Bad Name'"},
        {"require \"index\"; if header :last \"a\" \"b\" {}", "line 1, column 21: ':last' needs ':index'"},
        {"require \"index\"; if header :index 0 \"a\" \"b\" {}", "line 1, column 35: ':index' counts from 1"},
        {"if header :index 1 \"a\" \"b\" {}", "line 1, column 11: ':index' needs require \"index\""},
        {"require \"duplicate\"; if duplicate :header \"a\" :uniqueid \"b\" {}",
         "line 1, column 47: ':uniqueid' conflicts with an earlier tag of 'duplicate'"},
        {"reject \"no\";", "line 1, column 1: 'reject' needs require \"reject\""},
        {"require \"fileinto\";\nfileinto \"a\"\nkeep;", "line 3, column 1: expected ';' after the arguments of fileinto, found 'keep'"},
        {"if address \"subject\" \"x\" {}", "line 1, column 12: 'subject' is not an address field (address test)"},
        {"if address [\"From\", \"X-Foo\"] \"x\" {}", "line 1, column 12: 'X-Foo' is not an address field (address test)"},
        {"require \"FileInto\";", "line 1, column 9: unknown extension 'FileInto'"},  // capability names are case-sensitive
        {"require \"date\"; if date \"date\" [\"year\"] \"1\" {}", "line 1, column 32: 'date' needs a string here"},
        {"require \"mailbox\"; if mailboxexists 1 {}", "line 1, column 37: 'mailboxexists' needs a string list here"},
    };
    for (const auto& r : rows) {
        INFO(r.script);
        CHECK(compile_error(r.script) == r.error);
    }
}

TEST_CASE("sieve validator: scripts that compile", "[sieve]") {
    const char* ok[] = {
        "",
        "# only a comment",
        "keep;",
        "require [\"fileinto\", \"copy\", \"mailbox\", \"imap4flags\"]; fileinto :create :copy :flags [\"\\\\Seen\"] \"a\";",
        "require \"comparator-i;octet\"; if header :comparator \"i;octet\" \"a\" \"b\" {}",
        "if anyof (not true, allof (false, exists \"x\")) { keep; } elsif true { stop; } else { discard; }",
        "require \"variables\"; set \"${x}\" \"y\";",  // a name built at run time is checked at run time
        "require \"imap4flags\"; setflag \"\\\\Seen\"; addflag \"var\" [\"a\", \"b\"]; if hasflag \"a\" {}",
        "require [\"vacation\"]; vacation :days 3 :subject \"s\" :from \"me@example.com\" :addresses [\"a@b\"] :mime "
        ":handle \"h\" \"r\";",
        "require \"editheader\"; deleteheader :index 2 :last :contains \"X-A\" [\"b\"]; deleteheader \"X-B\";",
        "require [\"duplicate\"]; if duplicate :handle \"h\" :header \"X-Id\" :seconds 10 :last {}",
        "require [\"environment\", \"relational\"]; if environment :value \"ge\" \"version\" \"1\" {}",
        "REQUIRE \"fileinto\"; FileInto \"x\";",
    };
    for (const char* s : ok) {
        INFO(s);
        CHECK(compile_error(s).empty());
    }
}

TEST_CASE("sieve validator: encoded-character only once required", "[sieve]") {
    CompileResult on = compile("require [\"encoded-character\", \"fileinto\"]; fileinto \"${hex:41 42}${unicode:263A}${hex:zz}\";");
    REQUIRE(on.script);
    CHECK(on.script->commands[0].args[0].strings[0] == "AB\xe2\x98\xba${hex:zz}");
    CompileResult off = compile("require \"fileinto\"; fileinto \"${hex:41}\";");
    REQUIRE(off.script);
    CHECK(off.script->commands[0].args[0].strings[0] == "${hex:41}");
}
