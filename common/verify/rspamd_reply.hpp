// rspamd's /checkv2 reply: a small pure JSON reader with limits for the fields ferry-smtpd uses (score, action, symbols).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::verify::spam {

// What a reply may hold; past a limit it is refused (the caller counts rspamd as not answering).
struct RspamdLimits {
    size_t max_bytes = 1024 * 1024;  // the whole JSON text
    size_t max_depth = 16;           // nested objects and arrays
    size_t max_symbols = 1000;       // entries of "symbols" kept
    size_t max_string = 4096;        // octets of one string, after unescaping
};

struct RspamdReply {
    double score = 0;                  // "score"
    double required_score = 0;         // "required_score"
    std::string action;                // "action": "no action", "add header", "reject", ...
    bool skipped = false;              // "is_skipped": rspamd did not scan the message
    std::vector<std::pair<std::string, double>> symbols;  // "symbols": each name with its "score"
};

// Parses the JSON body of a /checkv2 reply (RFC 8259): one object that must hold a numeric
// "score"; other members are skipped (still checked as JSON). Nullopt with `why` set for text that
// is not such JSON or passes a limit.
std::optional<RspamdReply> parse_rspamd_reply(std::string_view json, std::string* why = nullptr,
                                              const RspamdLimits& limits = {});

}  // namespace ferry::verify::spam
