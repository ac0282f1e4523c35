// What a probe that came back shows: its Received: trail hop by hop, or the diagnostic of its bounce.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ferry::admin {

// One Received: field: the hosts it names and when it was written (RFC 5321 4.4).
struct Hop {
    std::string from, by, with;  // the words after "from", "by" and "with" ("" when absent)
    std::optional<int64_t> at;   // the date after the last ';', unix seconds
};

Hop parse_received(const std::string& value);

// The hops of a header block, oldest (the bottom Received: field) first.
std::vector<Hop> received_trail(const std::string& headers);

// One line a hop: "hop 1: by mx.example.org (from relay.example.org, with ESMTPS), +2 s", the time
// counted from the previous hop, and for the first from `sent` (the probe's Date:).
std::vector<std::string> hop_lines(const std::vector<Hop>& hops, std::optional<int64_t> sent);

// A delivery status notification (RFC 3464) of a failure: its Status: and the Diagnostic-Code:
// without the type ("smtp; "), or the Action: when there is no diagnostic.
struct Bounce {
    bool found = false;
    std::string status;      // "5.2.2"
    std::string diagnostic;  // "552 5.2.2 Mailbox full"
};
// `message` (a whole message, headers and body) read as a DSN: found when it has a
// message/delivery-status part with a per-recipient Action: failed.
Bounce read_bounce(const std::string& message);

}  // namespace ferry::admin
