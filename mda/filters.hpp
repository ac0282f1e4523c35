// Administrator pipe filters (ferry-mda(8), FILTERS): external commands that see each message before Sieve and may rewrite, reject, discard or defer it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/fd.hpp"

namespace ferry {
class Config;
}

namespace ferry::mda {

struct FilterSettings {
    std::vector<std::string> commands;  // mda_filters, in order; empty: none
    double timeout = 60;                // mda_filter_timeout, per filter
    uint64_t max_size = 0;              // message_size_limit: a filter's output may not exceed it
    std::string home;                   // of the user ferry-mda runs as
    bool enabled() const { return !commands.empty(); }
};
FilterSettings filter_settings(const Config& config);

// What a filter's environment tells it of the transaction.
struct FilterEnvelope {
    std::string queue_id, sender;
    std::string recipients;           // RECIPIENT: the accounts, space-separated
    std::string original_recipients;  // ORIGINAL_RECIPIENT: the RCPT addresses as written
    std::string client_address;       // CLIENT_ADDRESS: empty when not known
};

// The exit codes (sysexits.h) a filter answers with; anything else, a signal or a timeout defers.
constexpr int kFilterReject = 77;   // EX_NOPERM; EX_NOUSER (67) is taken the same way
constexpr int kFilterNoUser = 67;
constexpr int kFilterDiscard = 99;
constexpr int kFilterTempfail = 75;  // EX_TEMPFAIL

struct FilterResult {
    enum class Action { keep, replaced, reject, discard, tempfail } action = Action::keep;
    std::string text;   // reject: the filter's first line, printable ASCII; tempfail: why, for the log
    std::string which;  // the filter that decided (replaced: the last that rewrote it; keep: none)
    Fd message;         // replaced: the new message, from offset 0
    uint64_t size = 0;
};

// Runs the chain over the message at [start, end) of `fd`: each filter gets the message the one
// before it left. Blocks: for a worker thread.
FilterResult run_filters(const FilterSettings& settings, const FilterEnvelope& envelope, int fd, uint64_t start,
                         uint64_t end);

// The first line of `text`, printable ASCII only, at most 200 characters: for an SMTP reply.
std::string filter_reply_text(std::string_view text);

}  // namespace ferry::mda
