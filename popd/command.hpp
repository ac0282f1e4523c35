// POP3 command lines: a pure line scanner with a length limit and a parser of RFC 1939/2449/5034 commands.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"

namespace ferry::pop3 {

struct Limits {
    // Longest line accepted, CRLF included (RFC 2449 section 4 allows 255 for commands; SASL
    // responses need more, so the default is popd_max_line_length = 512).
    size_t max_line = 512;
    // Longest single argument (RFC 2449 raises RFC 1939's 40 to 255).
    size_t max_argument = 255;
};

// One step of cutting lines out of the input buffer.
struct LineScan {
    enum Status {
        line,        // `text` is a whole line (without CR LF); drop `consumed` bytes
        need_more,   // no whole line yet; drop `consumed` bytes (non-zero only while skipping)
        too_long,    // the line passes the limit: answer once, drop `consumed`, skip to its end
        skipped,     // the end of an over-long line was found and dropped (`consumed` bytes)
    };
    Status status = need_more;
    size_t consumed = 0;
    std::string_view text;
    bool line_ended = false;  // too_long: the dropped bytes include the line's LF (no skipping needed)
};

// Finds the next line in `buf`. `skipping` is true while the rest of an over-long line is being
// discarded; the caller sets it after too_long and clears it after skipped.
LineScan scan_line(std::string_view buf, size_t max_line, bool skipping);

enum class Verb { user, pass, stat, list, retr, dele, noop, rset, quit, top, uidl, capa, stls, auth };

struct Command {
    Verb verb = Verb::noop;
    std::string keyword;              // upper-cased, for logs
    std::vector<std::string> args;    // PASS has one argument: the rest of the line, spaces included
    // Numeric arguments, already range-checked: LIST/UIDL/RETR/DELE message number, TOP's line count.
    std::optional<uint64_t> number;
    std::optional<uint64_t> lines;
};

// Parses one command line (without CRLF). Errors carry the client text for "-ERR <text>"; the
// session answers and goes on. State checks (e.g. RETR before login) are the session's job.
Result<Command> parse_command(std::string_view line, const Limits& limits);

// Decimal digits only, no sign, no overflow; a message number must also be >= 1 (the caller checks).
std::optional<uint64_t> parse_number(std::string_view s);

}  // namespace ferry::pop3
