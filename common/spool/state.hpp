// The recipient state file (qmgr's, read by the queue tools too): per-recipient delivery results beside the immutable queue file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"

namespace ferry::qmgr {

// spool_dir/state/<qid> (ferry-spool(5)):
//   ferry-state 1
//   id <qid>
//   warned <unix time>            (only once a delay warning was queued)
//   held <unix time>              (only while the administrator holds the message: ferry-admin queue hold)
//   rcpt TAB <index> TAB <status> TAB <attempts> TAB <next try> TAB <orig> TAB <to> TAB <reply> TAB <dsn status> TAB <bounce id>
//   ...
//   end <number of rcpt records>
// Unknown records and extra trailing fields of a rcpt record are ignored, so a later version can
// add fields without breaking this reader; a record without <dsn status> or <bounce id> (written
// before they existed) reads as an empty one. A file without its END record is refused.
// <next try> is wall-clock time (unix seconds); the scheduler keeps it on the monotonic clock.
inline constexpr const char* kStateMagic = "ferry-state 1";
inline constexpr const char* kStateDir = "state";
inline constexpr size_t kMaxStateLine = 8192;   // longest record decode accepts
inline constexpr size_t kMaxReplyText = 1000;   // replies are cut to this when stored
inline constexpr int kMaxAttempts = 1000000;
inline constexpr size_t kMaxDsnStatus = 9;     // "5.123.456", the longest RFC 3463 status

// The states of mta/qmgr/recipient.hpp, as ferry-spool(5) lists them:
// queued: not tried yet; handed_off: in an LMTP transaction (after a restart: unknown);
// delivered: the agent answered 2xx after the data; deferred: failed temporarily, retried at
// next_try; unknown: no answer after the final dot was sent, so maybe delivered: retried at next_try,
// never expired into a bounce; failed: failed permanently, the sender not told yet (the bounce is
// queued under <bounce id> once that is saved); bounced: the bounce is committed in the queue, or none
// is due (null sender); unresolved: alias expansion failed temporarily, so `to` is still the
// original recipient and is expanded again at next_try (never delivered as it stands).
// delivered and bounced are final: a message whose recipients are all final is removed.
// Files of earlier versions say pending (read as queued) and done (read as delivered).
enum class RcptStatus { queued, handed_off, delivered, deferred, unknown, failed, bounced, unresolved };

const char* status_name(RcptStatus s);
// Whether `s` is an RFC 3463 status: class.subject.detail, class 2, 4 or 5, the others 1-3 digits.
bool valid_dsn_status(std::string_view s);
bool is_final(RcptStatus s);

// One expanded recipient: `orig` is the queue file's recipient number `index`, `to` one of its
// alias targets (or `orig` itself). Bounces and delay warnings need all three plus the reply.
struct RcptState {
    size_t index = 0;
    RcptStatus status = RcptStatus::queued;
    int attempts = 0;          // failed attempts so far
    int64_t next_try = 0;      // seconds; when deferred, unknown, unresolved or failed: not before this
    std::string orig;          // the recipient as the queue file has it
    std::string to;            // the address delivery goes to
    std::string reply;         // last reply (or reason) for this recipient
    std::string dsn_status = {};  // RFC 3463 status for the report once failed ("5.1.1", "4.4.7")
    std::string bounce_id = {};   // failed, bounced: the queue id of its bounce, once chosen
    bool uncertain = false;       // handed_off (in memory only): it was unknown before this attempt
};

struct MessageState {
    std::string id;
    std::vector<RcptState> rcpts;
    int64_t warned = 0;        // unix time the delay warning was queued; 0 = not yet
    int64_t held = 0;          // unix time it was put on hold; 0 = not held (never attempted while held)

    bool all_final() const;
    // Whether queue-file recipient `index` has been expanded into records yet.
    bool has_index(size_t index) const;
};

std::string encode_state(const MessageState& state);
Result<MessageState> decode_state(std::string_view text);

// Empty optional when the file does not exist. Queue::load reads with spool::read_bytes and
// decode_state itself, as it must tell an I/O error from a corrupt file.
Result<std::optional<MessageState>> read_state(const std::string& path);
// tmp file + fsync + rename + fsync(dir): a crash leaves the old or the new file, never a mix.
Result<void> write_state(const std::string& dir, const MessageState& state);

}  // namespace ferry::qmgr
