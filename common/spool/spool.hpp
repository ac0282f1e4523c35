// The queue file: a self-describing record of one accepted message, written by smtpd, owned by qmgr.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/group_sync.hpp"
#include "common/base/fd.hpp"
#include "common/base/fs.hpp"
#include "common/base/result.hpp"

namespace ferry::spool {

// On-disk layout under spool_dir (see ferry-spool(5)):
//   incoming/<id>   being received, flock'd by its writer; never delivered; removed at qmgr start
//                   unless still locked (a live writer)
//   queue/<id>      committed: fsync'd and linked, the message is accepted
inline constexpr const char* kIncoming = "incoming";
inline constexpr const char* kQueue = "queue";
//   state/<id>, corrupt/<id>   qmgr's (ferry-spool(5)); a new id never names a leftover there
inline constexpr const char* kState = "state";
inline constexpr const char* kCorrupt = "corrupt";
inline constexpr const char* kMagic = "ferry-queue 1";

// What the sender asked of one recipient (RFC 3461): the records "notify" and "orcpt" after its
// "rcpt" record (ferry-spool(5)). Empty for files written before these existed.
struct RcptDsn {
    std::string notify;        // "SUCCESS,DELAY", "NEVER"; "" when RCPT had no NOTIFY
    std::string orcpt;         // "rfc822;a+2Bb@example.org", as RCPT's ORCPT=; "" when none
};

struct Envelope {
    std::string id;
    int64_t arrival = 0;       // unix seconds
    std::string sender;        // empty for the null reverse-path <>
    std::string client;        // client address
    std::string helo;
    std::string auth;          // authenticated identity, empty when none
    std::vector<std::string> recipients;
    // ESMTP parameters of the transaction, each an optional record (ferry-spool(5)):
    bool smtputf8 = false;     // "smtputf8": MAIL had SMTPUTF8 (RFC 6531); a relay needs it from the next hop
    std::string body;          // "body 8BITMIME" or "body 7BIT" when MAIL had BODY= (RFC 6152)
    std::string ret;           // "ret FULL" or "ret HDRS" (RFC 3461 RET)
    std::string envid;         // "envid <xtext>": ENVID as sent, still xtext (RFC 3461)
    std::vector<RcptDsn> rcpt_dsn;  // per recipient, by index; may be shorter than recipients

    // The DSN parameters of recipient `index` (empty ones when none were recorded).
    RcptDsn dsn_of(size_t index) const { return index < rcpt_dsn.size() ? rcpt_dsn[index] : RcptDsn{}; }
};

struct QueuedMessage {
    Envelope envelope;
    std::string data;          // the message with LF line ends, Received: included (late fields first)
};

// Creates the spool's directories when missing.
Result<void> ensure_layout(const std::string& spool_dir);

// A new queue id: 16 upper-case hex characters, time-ordered: 13 of microseconds, 3 random.
std::string new_queue_id();
// The same for a clock reading of `now_usec` (tests step the clock): never the time part of an id
// this process handed out before, nor one that sorts before it.
std::string new_queue_id(uint64_t now_usec);

// Encodes and decodes the queue file format; decode rejects a file without its END record, and
// one whose END record carries a checksum that does not match its bytes.
std::string encode_header(const Envelope& env);
// `late_length`: header fields written after the data (Writer::add_header), "\nend D L\n"; a
// file without them has "\nend D\n".
std::string encode_trailer(uint64_t data_length, uint64_t late_length = 0);
// With the CRC-32C of every byte before the END record (the envelope records, the data and the
// late fields): "\nend D L C\n", C in 8 hex digits. What Writer writes; the other forms are read
// as before, unchecked.
std::string encode_trailer(uint64_t data_length, uint64_t late_length, uint32_t checksum);
Result<QueuedMessage> decode(std::string_view file);

// A whole file, read with open/read. An empty optional when it does not exist (ENOENT); an error
// for any other failure (EMFILE, ENFILE, EIO, EACCES...), which says nothing about the contents:
// the caller tries again later and never treats it as a corrupt file.
Result<std::optional<std::string>> read_bytes(const std::string& path);
// read_bytes + decode, for callers that need no difference between the two kinds of failure.
Result<QueuedMessage> read_file(const std::string& path);

// The data of an open queue file, read in chunks (a delivery never holds a whole message). The
// message a reader sees is the late header fields (found only after the data was in: spam score,
// DKIM result), then the data as it arrived.
struct MessageData {
    Fd fd;
    uint64_t offset = 0;  // where the data starts in the file
    uint64_t length = 0;  // of the message: the late fields and the data, from the END record
    uint64_t late = 0;    // bytes of late fields, stored after the data in the file
    // Up to `len` bytes of the message from position `at` (0 at its end); a file shorter than its
    // END record said is an error.
    Result<size_t> read(uint64_t at, char* buf, size_t len) const;
};

// A queue file opened for delivery: the envelope and END record decoded, the data left on disk.
struct OpenedMessage {
    enum class Status { ok, missing, corrupt };
    Status status = Status::ok;
    std::string why;  // when corrupt
    Envelope envelope;
    MessageData data;
    std::optional<uint32_t> checksum;  // from the END record; none in files written without one
};
// Reads only the header records and the END record. An error for I/O failures (EMFILE, EIO,
// EACCES...), which say nothing about the contents; `missing` when it does not exist (ENOENT);
// `corrupt` when what was read does not decode.
Result<OpenedMessage> open_message(const std::string& path);
// Reads the whole file of an opened message and checks it against its END record's checksum:
// false when they differ (a torn or damaged file), true when they agree or there is none. An
// error only for I/O failures, which say nothing about the contents.
Result<bool> checksum_matches(const OpenedMessage& m);

// Where encode_header puts the queue id: right after "<magic>\nid ".
inline constexpr size_t kIdOffset = std::char_traits<char>::length(kMagic) + 4;

// Writes one message into incoming/, then commits it into queue/ with the fsyncs that make it accepted.
class Writer {
public:
    // Allocates a queue id (env.id is filled in), creates incoming/<id> holding an flock(LOCK_EX)
    // on it until commit or discard (so qmgr's start-up leaves it alone), and writes the envelope.
    static Result<Writer> create(const std::string& spool_dir, Envelope& env);
    // The same with `first_id` tried first (tests force id collisions with it).
    static Result<Writer> create(const std::string& spool_dir, Envelope& env, const std::string& first_id);
    // Moves leave the source empty (no id, done), so its destructor never unlinks the live file.
    Writer(Writer&& o) noexcept;
    Writer& operator=(Writer&& o) noexcept;
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    ~Writer();

    const std::string& id() const { return id_; }
    uint64_t size() const { return data_length_ + late_length_; }
    Result<void> append(std::string_view data);
    // Header fields ("Name: value\n" each) that readers see before the message, for what is known
    // only once the whole message is in (a spam score, a DKIM result). After the last append();
    // before sync().
    Result<void> add_header(std::string_view fields);
    // The message as written so far (no late fields), read through a new descriptor: checks of the
    // whole message read it before the commit.
    Result<MessageData> reader() const;
    // trailer, fsync(file), link into queue/ (never replacing a file there: when queue/<id>, or a
    // leftover state/ or corrupt/ file of that id, exists the message takes a new id, which id()
    // then returns), fsync(queue dir), unlink incoming/<id>, and the lock goes last. After this
    // returns ok the message is accepted; after an error it is not in queue/ (a failed fsync of
    // queue/ unlinks it again; when even that fails, the message is accepted, ok, and an error
    // logged). `linked` runs between the fsync of queue/ and the unlink (crash tests stop there).
    Result<void> commit(const std::function<void()>& linked = {});
    // commit() in the three steps of a group commit (common/event/commit_stage.hpp), each run once,
    // in order, on any one thread at a time; commit() is sync, publish, fsync of its directory, settle.
    //   sync     trailer and fsync(file): the bytes are on disk, the message is not accepted yet;
    //   publish  link into queue/ (a new id as commit() says); returns queue/, whose fsync makes it
    //            durable, and an error leaves nothing in queue/;
    //   settle   with the outcome of that directory fsync: unlinks incoming/<id> and drops the lock
    //            (an error there first takes the queue name back, as commit() does). `linked` runs
    //            before that, as in commit().
    Result<void> sync();
    Result<std::string> publish();
    Result<void> settle(const Result<void>& dir_synced, const std::function<void()>& linked = {});
    // ferry-smtpd's sync step, in place of sync and publish (ferry-spool(5), COMMIT PROTOCOL):
    // trailer, link into queue/ (a new id as commit() says), then fsync(file) here while
    // `queue_dir` fsyncs queue/ on its thread. Ok: both are done and the message is accepted;
    // publish() then has nothing left to do and settle() gets ok. An error: it is not in queue/
    // (the link is undone, as commit() does after a failed fsync of queue/). `published` runs
    // between the link and the fsyncs (crash tests stop there).
    Result<void> sync_linked(GroupSync& queue_dir, const std::function<void()>& published = {});
    void discard();

private:
    Writer() = default;
    std::string incoming_path() const;
    Result<void> take_new_id();
    Result<void> checksum_again();
    Result<void> write_trailer();
    Result<std::string> link_into_queue(bool synced);
    // Takes queue/<id> back after a failed fsync (`why`). When the name cannot go, a `whole` file
    // (its own fsync done) stays accepted (ok, logged); one that may not be on disk is still refused.
    Result<void> unpublish(const std::string& queued, const Error& why, bool whole);
    std::string spool_dir_;
    std::string id_;
    std::optional<DurableFile> file_;  // incoming/<id>, locked; empty once committed or discarded
    uint64_t data_offset_ = 0;         // where the data starts: the size of the envelope records
    uint64_t data_length_ = 0;
    uint64_t late_length_ = 0;         // add_header() bytes, after the data
    bool trailer_written_ = false;     // the END record is written (sync() or sync_linked() ran)
    bool reused_ = false;              // a spare file (spare.hpp): cut at its end before the fsync
    uint32_t crc_ = 0;                 // CRC-32C of every byte written before the trailer
    std::string queued_;               // queue/<id> once published (before publish(): sync_linked() did it all)
    std::vector<std::string> spares_;  // spare/ names listed at the link, offered once queue/ is synced
};


// Whether the writer of the queue file at `path` still holds its lock: it is between the link into
// queue/ and its decision (it may unlink the file again), so qmgr leaves the file for later. False
// when the file does not exist.
Result<bool> writer_active(const std::string& path);

// Removes an incoming/ file whose writer is gone: true when removed (or already gone), false when
// a live writer still holds its lock. A killed writer's lock went with it.
Result<bool> remove_abandoned(const std::string& path);

}  // namespace ferry::spool
