// The Sieve interpreter: a compiled script, a message, its envelope and environment in; the actions to take out (pure).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "mda/sieve/actions.hpp"
#include "mda/sieve/script.hpp"

namespace ferry::sieve {

// What running one script on one message may spend. Each becomes a ferry-mda config key.
struct RunLimits {
    size_t max_actions = 32;          // actions taken (edits and the implicit keep included)
    size_t max_redirects = 4;         // redirect actions
    uint64_t max_steps = 1000000;     // units of work: commands, comparisons, :matches steps, decoded octets / 16
    size_t max_variable_size = 4096;  // octets of one variable's value (RFC 5229 5: at least 4000); longer is cut
    uint64_t min_vacation_days = 1;   // :days is held between these (RFC 5230 4.1)
    uint64_t max_vacation_days = 30;
};

struct Envelope {
    std::string from;         // MAIL FROM, "" for the null sender
    std::string to;           // the recipient this delivery is for
    std::string original_to;  // ORCPT when given, else the same as to
    std::string auth;         // the authenticated submitter, if any
};

// RFC 7352: the question the duplicate test asks ferry-mda, which keeps the memory.
struct DuplicateQuery {
    std::string handle;  // :handle, "" without
    std::string id;      // the unique id: Message-ID, the :header field's value, or :uniqueid
    uint64_t seconds = 0;  // :seconds, 0 for the site's default
    bool last = false;     // :last: the period counts from the last time seen, not the first
};

struct RunInput {
    std::string_view message;  // header and body, LF or CRLF line ends
    uint64_t size = 0;         // the whole message's size when `message` is its start only; 0: message.size()
    Envelope envelope;
    // RFC 5183 items: "domain", "host", "location", "name", "phase", "remote-host", "remote-ip", "version", ...
    std::map<std::string, std::string> environment;
    int64_t now = 0;         // seconds since the epoch, for currentdate
    int local_zone = 0;      // minutes east of UTC, for date without :zone
    std::vector<std::string> own_addresses;  // the user's addresses besides envelope.to (vacation)
    std::function<bool(std::string_view mailbox)> mailbox_exists;  // mailboxexists (RFC 5490); none: false
    std::function<bool(const DuplicateQuery&)> duplicate;            // true when the id was seen already; none: false
    std::string subaddress_delimiters = "+";  // RFC 5233 :user/:detail (recipient_delimiter); empty: no detail
};

struct Outcome {
    std::vector<Action> actions;
    std::vector<DuplicateQuery> duplicates;  // to remember once the message is delivered (RFC 7352 3)
    bool stopped = false;                    // the script ended with stop
};

// Runs a script. A run-time error (a limit, a conflict of actions, a bad redirect address) is an
// Error naming the line; the caller then keeps the message in INBOX (RFC 5228 2.10.6).
Result<Outcome> run(const Script& script, const RunInput& input, const RunLimits& limits = {});

}  // namespace ferry::sieve
