// ManageSieve commands (RFC 5804 section 4): a pure scanner of atoms, numbers, quoted strings and
// literals {n} / {n+} under limits, and the mapping of a scanned command to a verb and its arguments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"

namespace ferry::managesieve {

struct Limits {
    // Longest line of a command outside its literals, CRLF included (managesieve_max_line_length).
    size_t max_line = 8192;
    // Longest literal: a script is one (managesieve_max_script_size).
    size_t max_literal = 1024 * 1024;
    // Longest quoted string (RFC 5804 section 4: quoted strings are at most 1024 octets).
    size_t max_quoted = 1024;
    // Most arguments after the command name (AUTHENTICATE, HAVESPACE, PUTSCRIPT, RENAMESCRIPT take 2).
    size_t max_args = 4;
};

struct Arg {
    enum class Kind { string, number, atom };
    Kind kind = Kind::string;
    std::string text;     // string: its octets (unquoted); atom and number: as written
    uint64_t number = 0;  // number: its value (0 .. 4294967295)
};

struct Command {
    std::string name;  // upper-cased
    std::vector<Arg> args;
};

// One step of reading a command (or a SASL response) out of the input buffer.
struct Scan {
    enum class Status {
        need_more,  // nothing whole yet; consume nothing
        command,    // `command` is complete: drop `consumed` octets
        error,      // answer NO `error`: drop `consumed` octets, then `discard` more, then (skip_line) through the next LF
    };
    Status status = Status::need_more;
    size_t consumed = 0;
    Command command;
    std::string error;
    std::string code;          // a response code for the NO, e.g. QUOTA/MAXSIZE for an over-long literal
    uint64_t discard = 0;      // octets of a refused literal still to come, dropped unread
    bool skip_line = false;    // the rest of the line up to its LF is dropped too (over-long line, refused literal)
};

// A command: an atom, then arguments separated by single spaces, then CRLF (or a bare LF).
Scan scan_command(std::string_view input, const Limits& limits);
// A client's SASL response (RFC 5804 section 2.1): one string (quoted or literal), then CRLF.
Scan scan_response(std::string_view input, const Limits& limits);

enum class Verb {
    authenticate, starttls, logout, capability, havespace, putscript, listscripts, setactive, getscript,
    deletescript, renamescript, checkscript, noop, unauthenticate,
};

// A command checked against its verb's arguments.
struct Request {
    Verb verb = Verb::noop;
    std::string name;                  // for logs
    std::vector<std::string> strings;  // the string arguments, in order
    std::optional<uint64_t> number;    // HAVESPACE's size
};

// The verb and its arguments: an error (its text for NO) for an unknown command or wrong arguments.
Result<Request> interpret(const Command& command);

}  // namespace ferry::managesieve
