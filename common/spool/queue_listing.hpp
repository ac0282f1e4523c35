// The queue as mailq, `sendmail -bp` and `ferry-admin queue list|show` print it, read from the spool files only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/spool/spool.hpp"
#include "common/spool/state.hpp"

namespace ferry::spool {

// One message of queue/ with its state file, if qmgr wrote one yet.
struct QueueEntry {
    Envelope envelope;
    uint64_t size = 0;                         // the message data as stored (LF line ends)
    std::optional<qmgr::MessageState> state;   // none: qmgr has not attempted it yet
    std::string problem;                       // a queue or state file that does not decode: why
    bool held() const { return state && state->held != 0; }
};

// Every message in spool_dir/queue, oldest first (queue ids are time-ordered). Reads only; safe
// while qmgr and smtpd run: a file that goes away meanwhile is left out. An error when the spool
// cannot be read at all (not root or mail_user: EACCES).
Result<std::vector<QueueEntry>> read_queue(const std::string& spool_dir);
// One message; an empty optional when queue/<id> does not exist.
Result<std::optional<QueueEntry>> read_queue_entry(const std::string& spool_dir, const std::string& id);

// The mailq listing: a line per message (queue id, "!" when held, size, arrival, sender), then one
// per recipient with its state and last reply; "Mail queue is empty" when it is.
std::string format_listing(const std::vector<QueueEntry>& entries);
// `queue show`: envelope, hold, each recipient's state, then the message's header section.
std::string format_entry(const QueueEntry& entry, const std::string& header);

// The header section of queue/<id> (up to and including the empty line), at most `max` bytes.
Result<std::string> read_header_section(const std::string& spool_dir, const std::string& id, size_t max = 1 << 20);

}  // namespace ferry::spool
