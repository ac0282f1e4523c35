// ferry-mda's durable record of the (queue id, account) pairs it committed to a Maildir: exactly-once delivery.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/fd.hpp"
#include "common/base/group_sync.hpp"
#include "common/base/result.hpp"

namespace ferry::mda {

struct RecordLine;

// The record lives in segment files <dir>/<YYYYMMDDHH>.rec, one per hour (UTC) of the queue id's own
// time: ferry's queue ids start with 13 hex digits of microseconds since the epoch, so a retry of a
// message looks in one segment only, and a segment older than the lifetime is deleted whole. Each
// line is one record (ferry-mda(8), FILES):
//   FR1 <intent|done> <queue id> <account> <Maildir base name> <checksum>
//   FR1 <sent|unsent> <queue id> <account> <what> <checksum>
// the second kind for each redirect or vacation reply of the pair's Sieve scripts ("redirect:<address>",
// "vacation:<hash of the handle>"): submitted, or failed (the message kept instead). Fields are %XX-escaped
// (bytes up to ' ', '%' and DEL) and the checksum the FNV-1a 32 of the text before it, in 8 hex
// digits. A line cut by a crash or with a wrong checksum is skipped.
//
// Memory: the index of a segment (a hash of the pair, or of the pair and a send's what -> where its
// latest record starts) is built when
// the segment is first needed; at most kCachedSegments are kept. Methods may be called from any
// thread (one mutex).
class DeliveryRecord {
public:
    static constexpr size_t kCachedSegments = 4;
    static constexpr std::chrono::seconds kFutureSlack{86400};  // a queue id this far ahead still counts

    enum class State { intent, done, sent, unsent };
    struct Entry {
        State state = State::intent;
        std::string base;  // the Maildir file's base name (maildir::unique_base)
    };
    struct Intent {
        std::string account;
        std::string base;
    };

    // Takes the lock <dir>/lock (an error naming it when another process holds it) and prunes.
    static Result<std::unique_ptr<DeliveryRecord>> open(const std::string& dir, std::chrono::seconds lifetime,
                                                        time_t now = time(nullptr));

    // The segment (hours since the epoch) of a queue id; nullopt when it is not one of ferry's (16
    // upper-case hex digits) or its time is older than the lifetime or more than kFutureSlack ahead:
    // no record is kept for such a message.
    std::optional<int64_t> segment_of(std::string_view qid, time_t now = time(nullptr)) const;

    // The latest record of (qid, account), nullopt when there is none. `segment` is segment_of(qid).
    Result<std::optional<Entry>> lookup(int64_t segment, std::string_view qid, std::string_view account);
    struct Segment;
    // Intent records written by write_intents(), on disk once wait() says ok.
    struct Pending {
        uint64_t ticket = 0;
        std::shared_ptr<Segment> segment;
    };
    // Appends one intent record per item and asks for their fdatasync without waiting for it: one
    // fdatasync on the record's sync thread covers every transaction's records written before it
    // began, and a caller fsyncs its Maildir file meanwhile. Then, at most once every
    // kPruneInterval of `now`, prunes.
    Result<Pending> write_intents(int64_t segment, std::string_view qid, std::span<const Intent> items,
                                  time_t now = time(nullptr));
    // Blocks until the records are on disk; an error when their fdatasync (or a later one of their
    // segment) failed.
    Result<void> wait(const Pending& pending);
    uint64_t syncs() const { return sync_->syncs(); }  // the intents' fdatasync rounds so far
    // write_intents(), then wait().
    Result<void> intend(int64_t segment, std::string_view qid, std::span<const Intent> items,
                        time_t now = time(nullptr));
    // Appends a done record, not synced: after a crash the intent record and the Maildir say the same.
    Result<void> done(int64_t segment, std::string_view qid, std::string_view account, std::string_view base);

    // What an earlier attempt did with the send `what` of (qid, account): true sent, false failed
    // (and so kept the message), nullopt never recorded.
    Result<std::optional<bool>> send_outcome(int64_t segment, std::string_view qid, std::string_view account,
                                             std::string_view what);
    // Appends a sent (or unsent) record and syncs it: a send recorded is never made again.
    Result<void> sent(int64_t segment, std::string_view qid, std::string_view account, std::string_view what,
                      bool ok);
    // Deletes the segments whose last hour ended more than the lifetime before `now`; returns how many.
    size_t prune(time_t now = time(nullptr));

    // A pair being delivered right now, by one transaction at a time: a second transaction for it
    // (a client that gave up waiting and tried again) must wait for the first one's outcome.
    class Claim {
    public:
        Claim() = default;
        Claim(Claim&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)), key_(std::move(o.key_)) {}
        Claim& operator=(Claim&& o) noexcept;
        Claim(const Claim&) = delete;
        Claim& operator=(const Claim&) = delete;
        ~Claim();
        bool held() const { return owner_ != nullptr; }

    private:
        friend class DeliveryRecord;
        DeliveryRecord* owner_ = nullptr;
        std::string key_;
    };
    // A held Claim, or an empty one when another transaction has the pair.
    Claim claim(std::string_view qid, std::string_view account);

    // The file name of a segment: "2026112712.rec".
    static std::string segment_name(int64_t segment);
    const std::string& dir() const { return dir_; }

    DeliveryRecord(const DeliveryRecord&) = delete;
    DeliveryRecord& operator=(const DeliveryRecord&) = delete;
    ~DeliveryRecord();

private:
    DeliveryRecord(std::string dir, std::chrono::seconds lifetime, Fd lock);
    // The sync thread's work: fdatasync every segment written since the last one began.
    Result<void> sync_written();
    // The cached segment, else loaded or made (and an old one dropped from the cache); mu_ held.
    Result<std::shared_ptr<Segment>> segment(int64_t number);
    Result<void> append(int64_t number, const std::string& text, std::span<const std::pair<uint64_t, size_t>> at,
                        bool done, std::shared_ptr<Segment>* written);
    // The latest record under `key` (of the pair, or of one of its sends when `what` is given).
    Result<std::optional<RecordLine>> find(int64_t number, std::string_view qid, std::string_view account,
                                                  const std::string* what);

    std::string dir_;
    std::chrono::seconds lifetime_;
    Fd lock_;
    std::mutex mu_;
    std::map<int64_t, std::shared_ptr<Segment>> segments_;  // guarded by mu_
    std::set<std::string> claimed_;                          // guarded by mu_
    uint64_t uses_ = 0;                                      // guarded by mu_: the LRU clock
    time_t pruned_ = 0;                                      // guarded by mu_
    std::vector<std::shared_ptr<Segment>> unsynced_;         // guarded by mu_: written since the last sync began
    // Last: its thread stops before the rest goes.
    std::unique_ptr<GroupSync> sync_;
};

// One record line (without its LF) for `state`; and the parse of one line, pure, for tests and tools.
struct RecordLine {
    DeliveryRecord::State state = DeliveryRecord::State::intent;
    std::string qid, account, base;  // base: the send's `what` for sent and unsent
    bool is_send() const { return state == DeliveryRecord::State::sent || state == DeliveryRecord::State::unsent; }
};
std::string encode_record(const RecordLine& r);
std::optional<RecordLine> decode_record(std::string_view line);

}  // namespace ferry::mda
