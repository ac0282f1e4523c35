// Helpers of the MIME tests: feeding byte by byte, LF to CRLF, a tree as text to compare.
#pragma once

#include <string>
#include <string_view>

#include "common/mail/mime.hpp"

namespace ferry::mail::test {

inline MimePart bytewise(std::string_view message, MimeLimits limits = {}) {
    MimeParser parser(limits);
    for (char c : message) parser.feed(std::string_view(&c, 1));
    return parser.finish();
}

inline std::string crlf(std::string_view lf) {
    std::string out;
    for (char c : lf) {
        if (c == '\n') out += '\r';
        out += c;
    }
    return out;
}

inline std::string dump_range(const MimeRange& r) {
    return std::to_string(r.offset) + "+" + std::to_string(r.size) + "/" + std::to_string(r.crlf_offset) + "+" +
           std::to_string(r.crlf_size) + "/" + std::to_string(r.lines);
}

// Every field of the tree that the parser sets, one part per line, children indented.
inline std::string dump(const MimePart& p, int indent = 0) {
    std::string out(static_cast<size_t>(indent), ' ');
    out += p.type + "/" + p.subtype + " h=" + dump_range(p.header) + " b=" + dump_range(p.body);
    for (const auto& param : p.params) out += " " + param.name + "=" + param.value;
    if (p.encoding) out += " cte=" + *p.encoding;
    if (p.disposition) out += " disp=" + *p.disposition;
    if (p.envelope && p.envelope->subject) out += " subject=" + *p.envelope->subject;
    if (p.header_truncated) out += " truncated";
    if (p.header_complete) out += " complete";
    out += "\n";
    for (const auto& c : p.children) out += dump(c, indent + 2);
    return out;
}

}  // namespace ferry::mail::test
