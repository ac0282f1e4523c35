// The recipient state file: per-recipient delivery results beside the immutable queue file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace ferry::qmgr {

// spool_dir/state/<qid> (ferry-spool(5)):
//   ferry-state 1
//   id <qid>
//   rcpt TAB <index> TAB <status> TAB <attempts> TAB <next try> TAB <orig> TAB <to> TAB <reply>
//   ...
//   end <number of rcpt records>
// Unknown records and extra trailing fields of a rcpt record are ignored, so a later version can
// add (say) DSN bookkeeping without breaking this reader. A file without its END record is refused.
inline constexpr const char* kStateMagic = "ferry-state 1";
inline constexpr const char* kStateDir = "state";
inline constexpr size_t kMaxStateLine = 8192;   // longest record decode accepts
inline constexpr size_t kMaxReplyText = 1000;   // replies are cut to this when stored
inline constexpr int kMaxAttempts = 1000000;

// pending: not tried yet; deferred: failed temporarily, retried at next_try; done: delivered;
// failed: failed permanently; unresolved: alias expansion failed temporarily, so `to` is still the
// original recipient and is expanded again at next_try (never delivered as it stands).
enum class RcptStatus { pending, deferred, done, failed, unresolved };

const char* status_name(RcptStatus s);
bool is_final(RcptStatus s);

// One expanded recipient: `orig` is the queue file's recipient number `index`, `to` one of its
// alias targets (or `orig` itself). Bounces and delay warnings need all three plus the reply.
struct RcptState {
    size_t index = 0;
    RcptStatus status = RcptStatus::pending;
    int attempts = 0;          // failed attempts so far
    int64_t next_try = 0;      // unix seconds; when deferred, not before this
    std::string orig;          // the recipient as the queue file has it
    std::string to;            // the address delivery goes to
    std::string reply;         // last reply (or reason) for this recipient
};

struct MessageState {
    std::string id;
    std::vector<RcptState> rcpts;

    bool all_final() const;
    // Whether queue-file recipient `index` has been expanded into records yet.
    bool has_index(size_t index) const;
};

std::string encode_state(const MessageState& state);
Result<MessageState> decode_state(std::string_view text);

// Empty optional when the file does not exist.
Result<std::optional<MessageState>> read_state(const std::string& path);
// tmp file + fsync + rename + fsync(dir): a crash leaves the old or the new file, never a mix.
Result<void> write_state(const std::string& dir, const MessageState& state);

}  // namespace ferry::qmgr
