// Mail ferry-mda sends because of a user's rules: Sieve redirects and vacation replies, queued through ferry-qmgr.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/result.hpp"
#include "common/program/config.hpp"
#include "mda/sieve/actions.hpp"

namespace ferry::mda {

// The delivered message as the rules saw it.
struct Original {
    std::string_view message;  // LF line ends, without the trace headers ferry-mda adds
    std::string sender;        // envelope sender, "" for the null reverse-path
    std::string recipient;     // the account the message is delivered to
    std::string qid;           // for log lines
};

// Both calls block (they talk to ferry-qmgr's submit_socket and write to disk): run them on a
// worker thread, never on the event loop.
class AutoReply {
public:
    explicit AutoReply(const Config& config);

    // Queues the message to `to` (RFC 5228 4.2), unchanged but for the header that marks the
    // redirect (loop protection): an error when it could not be queued or would loop, and the
    // caller then keeps the message in INBOX.
    Result<void> redirect(const Original& m, const std::string& to);

    // Answers per RFC 5230 unless v.suppressed says why not or the account's memory (under
    // `maildir`, kept across restarts) shows this handle already answered this sender within
    // v.days: true when a reply was queued.
    Result<bool> vacation(const Original& m, const std::string& maildir, const sieve::Vacation& v);

private:
    // Queues `message` from `sender` to `to` through submit_socket (blocking).
    Result<void> submit(const std::string& qid, const std::string& sender, const std::string& to, std::string message);
    std::string vacation_reply(const Original& m, const sieve::Vacation& v, const std::string& to, int64_t now) const;

    const Config& config_;
};

}  // namespace ferry::mda
