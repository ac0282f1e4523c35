// Sieve scripts (RFC 5228): the syntax tree, compile limits and compile(), the pure front end of the interpreter.
//
// The library: script.hpp (this: syntax tree, compile), lexer, parser.cpp, validate.cpp (signatures),
// interpreter.hpp (run: message + envelope + environment in, actions.hpp out), match (comparators,
// match types), message (header fields, addresses, body parts, dates). Pure: no I/O, no clock;
// what it must ask (mailbox exists, duplicate seen) the caller answers through RunInput.
//
// Extensions a script may `require` (an unknown one is a compile error, as is using one that is
// not required): fileinto, reject, ereject (RFC 5429), envelope (parts from, to, auth), encoded-character,
// copy (RFC 3894), mailbox (RFC 5490: fileinto :create, mailboxexists), subaddress (RFC 5233, "+"),
// relational (RFC 5231), body (RFC 5173), variables (RFC 5229), imap4flags (RFC 5232), vacation
// (RFC 5230), date and index (RFC 5260), environment (RFC 5183), editheader (RFC 5293), duplicate
// (RFC 7352), comparator-i;ascii-numeric (RFC 4790; i;octet and i;ascii-casemap need no require).
// Capability names are case-sensitive. Not implemented: :regex, enotify, include, spamtest/virustest,
// foreverypart/mime/extracttext, vacation-seconds, ihave, envelope-dsn, :encodeurl, :specialuse,
// the i;unicode-casemap comparator (RFC 5051).
//
// Choices where the RFCs leave room, made as Pigeonhole (Dovecot) makes them: body :text reads
// text/html with its tags dropped, and the body test sets no match variables; a text: string's
// lines end in CRLF; address reads only address fields (RFC 5228 5.1); Received and
// Auto-Submitted are never added or deleted (RFC 5293 5). Our own: the date test reads a Received
// field's date after its last ";" (RFC 5322 3.6.7); :matches fills match variables for patterns of
// up to 32 "*" (past that, ${0} only).
//
// Limits: CompileLimits below (script size, nesting, string length, commands) and RunLimits in
// interpreter.hpp (actions, redirects, steps of work per message, variable size, vacation days).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::sieve {

// Where something is in the script: 1-based line and column (in octets).
struct Pos {
    uint32_t line = 1, column = 1;
};

// What compiling a script may spend. Each becomes a ferry-mda config key.
struct CompileLimits {
    size_t max_script_size = 1024 * 1024;  // octets of script text
    size_t max_nesting = 32;               // depth of blocks and of tests inside tests
    size_t max_string_length = 64 * 1024;  // octets of one string (a text: block included)
    size_t max_commands = 10000;           // commands and tests in the whole script
};

// A compile error: "line 3, column 7: expected ';' after the arguments of fileinto".
struct CompileError {
    Pos pos;
    std::string message;
    std::string text() const;
};

// One argument as written: a :tag, a number (K/M/G applied) or a string list (a lone string is a
// list of one, with `bracketed` false).
struct Argument {
    enum class Kind { tag, number, strings };
    Kind kind = Kind::strings;
    std::string tag;  // lower case, without ':'
    uint64_t number = 0;
    std::vector<std::string> strings;
    bool bracketed = false;
    Pos pos;
};

// The operations a compiled node performs; the validator maps each identifier to one.
enum class Op {
    // control and actions
    require, if_, elsif, else_, stop, keep, discard, fileinto, redirect, reject, ereject, set,
    setflag, addflag, removeflag, vacation, addheader, deleteheader,
    // tests
    true_, false_, not_, allof, anyof, header, address, envelope, exists, size, body, string,
    hasflag, date, currentdate, environment, mailboxexists, duplicate,
};

enum class Comparator { octet, ascii_casemap, ascii_numeric };
enum class MatchType { is, contains, matches, count, value };
enum class Relation { gt, ge, lt, le, eq, ne };
enum class AddressPart { all, localpart, domain, user, detail };
enum class BodyTransform { text, raw, content };

// A command or a test after validation: its tags sorted out into fields, its positional
// arguments in order, its tests and block.
struct Node {
    Op op = Op::true_;
    Pos pos;
    std::vector<Argument> args;      // positional arguments, in order
    std::vector<Argument> tag_args;  // tags as written, each with the value it took (kind of the value)
    std::vector<std::string> tags;   // names of the tags given, parallel to tag_args
    Comparator comparator = Comparator::ascii_casemap;
    MatchType match = MatchType::is;
    Relation relation = Relation::eq;
    AddressPart part = AddressPart::all;
    BodyTransform transform = BodyTransform::text;
    std::vector<Node> tests;  // not: one; allof/anyof: several; if/elsif: one
    std::vector<Node> block;

    bool has(std::string_view tag) const;
    // The value given with a tag: nullptr when the tag is absent.
    const Argument* tag(std::string_view name) const;
};

// A script ready to run: what it requires and its commands.
struct Script {
    std::set<std::string> extensions;
    std::vector<Node> commands;
    bool required(std::string_view ext) const { return extensions.count(std::string(ext)) != 0; }
};

// Parsing only: the raw syntax tree (identifiers lower-cased), for the validator and the fuzzer.
struct RawNode {
    std::string name;
    Pos pos;
    std::vector<Argument> args;
    std::vector<RawNode> tests;
    bool test_list = false;  // the tests were written in parentheses
    bool has_block = false;
    std::vector<RawNode> block;
};

struct ParseResult {
    std::vector<RawNode> commands;
    std::optional<CompileError> error;
};
ParseResult parse(std::string_view text, const CompileLimits& limits = {});

struct CompileResult {
    std::optional<Script> script;
    std::optional<CompileError> error;
};
// Parses and validates: a script that compiles fails at run time only for run-time reasons.
CompileResult compile(std::string_view text, const CompileLimits& limits = {});

}  // namespace ferry::sieve
