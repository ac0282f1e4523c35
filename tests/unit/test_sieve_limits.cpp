// Unit tests of the Sieve limits: each compile and run limit holds at its value and fails just past it.
#include <catch.hpp>

#include <string>

#include "sieve_util.hpp"

using namespace ferry::sieve;
using namespace ferry::sieve::test;

namespace {

std::string repeat(const std::string& s, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += s;
    return out;
}

// n nested blocks: "if true { if true { ... keep; } }".
std::string nested(size_t n) { return repeat("if true { ", n) + "keep; " + repeat("} ", n); }

ferry::Result<Outcome> run_with(const std::string& script, const RunLimits& limits, std::string_view message = kPlain) {
    CompileResult c = compile(script);
    if (!c.script) return ferry::make_error(0, "", c.error->text());
    return run(*c.script, default_input(message), limits);
}

}  // namespace

TEST_CASE("sieve limits: script size", "[sieve]") {
    CompileLimits l;
    l.max_script_size = 10;
    CHECK(compile_error("keep;keep;", l).empty());
    CHECK(compile_error("keep;keep; ", l) == "line 1, column 1: script larger than 10 octets");
}

TEST_CASE("sieve limits: nesting depth", "[sieve]") {
    CompileLimits l;
    l.max_nesting = 4;
    CHECK(compile_error(nested(4), l).empty());
    CHECK(compile_error(nested(5), l) == "line 1, column 44: nested deeper than 4 levels");
    // Tests inside tests count too: if (1) not (2) not (3) not (4) true (5).
    CHECK(compile_error("if not not not true { keep; }", l).empty());
    CHECK(compile_error("if not not not not true { keep; }", l) == "line 1, column 20: nested deeper than 4 levels");
    // The default holds deep scripts without running out of stack, and refuses deeper ones.
    CHECK(compile_error(nested(32)).empty());
    CHECK_FALSE(compile_error(nested(33)).empty());
    CHECK_FALSE(compile_error(repeat("if anyof(", 100000)).empty());
}

TEST_CASE("sieve limits: string length", "[sieve]") {
    CompileLimits l;
    l.max_string_length = 6;
    CHECK(compile_error("redirect \"a@bc.d\";", l).empty());
    CHECK(compile_error("redirect \"ab@cd.e\";", l) == "line 1, column 10: string longer than 6 octets");
    CHECK(compile_error("require \"reject\"; reject text:\n1234\n.\n;", l).empty());  // "1234\r\n"
    CHECK(compile_error("require \"reject\"; reject text:\n12345\n.\n;", l) ==
          "line 1, column 26: string longer than 6 octets");
}

TEST_CASE("sieve limits: commands", "[sieve]") {
    CompileLimits l;
    l.max_commands = 3;
    CHECK(compile_error("keep; keep; keep;", l).empty());
    CHECK(compile_error("keep; keep; keep; keep;", l) == "line 1, column 19: more than 3 commands and tests");
    CHECK(compile_error("if true { keep; }", l).empty());          // if, true, keep
    CHECK(compile_error("if not true { keep; }", l) == "line 1, column 15: more than 3 commands and tests");
}

TEST_CASE("sieve limits: actions", "[sieve]") {
    RunLimits l;
    l.max_actions = 3;
    std::string three = "require \"fileinto\"; fileinto \"a\"; fileinto \"b\"; fileinto \"c\";";
    auto ok = run_with(three, l);
    REQUIRE(ok);
    CHECK(ok->actions.size() == 3);
    auto over = run_with(three + " fileinto \"d\";", l);
    REQUIRE_FALSE(over);
    CHECK(over.error().text == "line 1: more than 3 actions");
    // The implicit keep counts.
    auto implicit = run_with("require [\"fileinto\", \"copy\"]; fileinto :copy \"a\"; fileinto :copy \"b\"; "
                             "fileinto :copy \"c\";", l);
    REQUIRE_FALSE(implicit);
    // Duplicates collapse before they count.
    CHECK(run_with(three + " fileinto \"a\"; fileinto \"b\";", l));
}

TEST_CASE("sieve limits: redirects", "[sieve]") {
    RunLimits l;
    l.max_redirects = 2;
    CHECK(run_with("redirect \"a@x.org\"; redirect \"b@x.org\";", l));
    auto over = run_with("redirect \"a@x.org\"; redirect \"b@x.org\";\nredirect \"c@x.org\";", l);
    REQUIRE_FALSE(over);
    CHECK(over.error().text == "line 2: more than 2 redirects");
    CHECK(run_with("redirect \"a@x.org\"; redirect \"b@x.org\"; redirect \"a@X.org\";", l));
}

TEST_CASE("sieve limits: steps per message", "[sieve]") {
    // Each command and each test is a step (plus the work of its comparisons).
    std::string script = repeat("if true { }\n", 10);
    RunLimits l;
    l.max_steps = 20;
    CHECK(run_with(script, l));
    l.max_steps = 19;
    auto over = run_with(script, l);
    REQUIRE_FALSE(over);
    CHECK(over.error().text == "line 10: the script took more than 19 steps");
    // A :matches over a long value spends a step per position it tries.
    std::string message = "Subject: " + std::string(3000, 'a') + "b\r\n\r\nbody\r\n";
    l.max_steps = 100000;
    CHECK(run_with("if header :matches \"subject\" \"*a*a*a*a*a*a*a*ab\" { discard; }", l, message));
    l.max_steps = 1000;
    auto slow = run_with("if header :matches \"subject\" \"*a*a*a*a*a*a*a*ab\" { discard; }", l, message);
    REQUIRE_FALSE(slow);
    CHECK(slow.error().text == "line 1: the script took more than 1000 steps");
    // Match variables take a backtracking search, within the same budget.
    auto captures = run_with("require [\"variables\", \"fileinto\"]; if header :matches \"subject\" \"*a*a*ab\" "
                             "{ fileinto \"${1}|${2}|${3}\"; }", l, message);
    REQUIRE_FALSE(captures);
    l.max_steps = 100000;
    captures = run_with("require [\"variables\", \"fileinto\"]; if header :matches \"subject\" \"*a*a*ab\" "
                        "{ fileinto \"${1}|${2}|${3}\"; }", l, message);
    REQUIRE(captures);
    CHECK(captures->actions[0].mailbox == "||" + std::string(2997, 'a'));
}

TEST_CASE("sieve limits: variable size", "[sieve]") {
    RunLimits l;
    l.max_variable_size = 8;
    auto out = run_with("require [\"variables\", \"fileinto\"]; set \"a\" \"12345678\"; set \"b\" \"123456789\"; "
                        "set \"c\" \"1234567\xc3\xa9\"; fileinto \"${a}|${b}|${c}\";", l);
    REQUIRE(out);
    CHECK(out->actions[0].mailbox == "12345678|12345678|1234567");  // a UTF-8 sequence is never cut
}
