// The per-folder mailbox index beside a Maildir (ferry-mailstore(5)): UIDs, flags, keywords, MODSEQ; its cache file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"
#include "common/store/cache_file.hpp"
#include "common/store/expunge_log.hpp"
#include "common/store/index_record.hpp"

namespace ferry::store {

// Beside new/ cur/ tmp/ of each folder (the Maildir root for INBOX, .Name for the others). No dot
// names: Maildir++ folders are the dot directories.
inline constexpr const char* kIndexFile = "ferry-index";
inline constexpr const char* kIndexLockFile = "ferry-index.lock";
inline constexpr const char* kIndexTempFile = "ferry-index.tmp";

// Maildir info letters of the IMAP system flags (the file name is the truth for these).
inline constexpr char kDraft = 'D', kFlagged = 'F', kPassed = 'P', kAnswered = 'R', kSeen = 'S', kDeleted = 'T';

// "\Seen" -> 'S' and so on for the five system flags RFC 9051 lets a client set; '\0' otherwise
// (case-insensitive, as flag names are).
char flag_letter(std::string_view imap_flag);
// 'S' -> "\Seen"; nullptr for letters that are no IMAP flag ('P', Dovecot's keyword letters).
const char* imap_flag(char letter);

struct Message {
    uint32_t uid = 0;
    uint64_t modseq = 0;
    std::string base;                 // the Maildir base name (maildir::NameInfo::base)
    std::string flags;                // Maildir info letters as last seen, sorted
    std::vector<uint32_t> keywords;   // ids into Index::keywords(), ascending
    std::string file;                 // "new/<name>" or "cur/<name>" as last seen; empty when not known yet
};

// What a sync found behind the index's back.
struct SyncStats {
    size_t added = 0;
    size_t expunged = 0;
    size_t changed = 0;  // flags in a file name that differ from the index
};

enum class FlagMode { replace, add, remove };

struct RecordBatch;

// Tests stop a writer between two steps of a change: a daemon whose test_pause_at key is set
// installs a hook that stops it at the point of that name. The points are
// "index-after-flag-rename" (files renamed, their flags not recorded yet),
// "index-after-expunge-unlink" (files removed, their expunge not recorded yet) and
// "index-before-uid" (append_delivered: a delivered message in new/ without its UID yet).
void set_pause_hook(std::function<void(const char* point)> hook);

// One folder's index, as one process sees it. Every change takes a short flock on kIndexLockFile,
// catches up with what others appended, appends its records, fdatasyncs and unlocks: a change that
// returned ok survives a crash. Readers take the lock shared while they read.
class Index {
public:
    // Opens (creating when missing) the index of the Maildir at `maildir`, creating the Maildir too.
    // Reads the index only: no message file and no directory listing (sync() does that).
    // A new index gets a UIDVALIDITY above `uidvalidity_above` (a folder's name used before).
    static Result<Index> open(const std::string& maildir, uint32_t uidvalidity_above = 0);
    Index(Index&&) noexcept = default;
    Index& operator=(Index&&) noexcept = default;
    Index(const Index&) = delete;
    Index& operator=(const Index&) = delete;

    // Reads what other processes appended since (or the whole file again after a compaction).
    Result<void> refresh();
    // refresh(), then brings the index in line with new/ and cur/: names it does not hold get the
    // next UIDs (ordered by mtime, then base name), names that are gone are expunged, flags that
    // changed in a name are recorded, each with a new MODSEQ. The listing is skipped when new/,
    // cur/ and the index file are the ones the last full sync of this object saw, with mtimes that
    // were settled then (see DirStamp).
    Result<SyncStats> sync();

    // Gives UIDs to messages already in new/ or cur/ (file names, with or without ":2,"), in this
    // order; a base the index holds already keeps its UID. O(1) per message in the folder size.
    Result<std::vector<uint32_t>> add(std::span<const std::string> names);
    Result<uint32_t> add(const std::string& name);

    // Sets, adds or removes flag letters and keywords of the given UIDs: the file is renamed
    // (into cur/ with ":2,<letters>") first, then the change is recorded with a new MODSEQ.
    // UIDs unknown or gone are skipped (a gone file is expunged). Returns the UIDs changed.
    // With `unchanged_since` (RFC 7162 UNCHANGEDSINCE), a message whose MODSEQ is above it is left
    // alone and its UID put into `*modified`, checked under the same lock as the change.
    Result<std::vector<uint32_t>> store_flags(std::span<const uint32_t> uids, FlagMode mode, std::string_view letters,
                                              const std::vector<std::string>& keywords = {},
                                              std::optional<uint64_t> unchanged_since = std::nullopt,
                                              std::vector<uint32_t>* modified = nullptr);
    // Removes the files of the given UIDs and records their expunge. Returns the UIDs expunged.
    Result<std::vector<uint32_t>> expunge(std::span<const uint32_t> uids);

    // Opaque cached values (ENVELOPE, BODYSTRUCTURE, sizes ...) by UID and key, kept in the cache
    // file (kCacheFile) beside the index: opening and syncing never read it; the first cache()
    // after them reads what it gained. No MODSEQ change; values of another UIDVALIDITY are dropped.
    Result<void> set_cache(std::span<const CacheValue> values);
    Result<void> set_cache(uint32_t uid, std::string_view key, std::string_view value);
    std::optional<std::string> cache(uint32_t uid, std::string_view key);

    // Rewrites the log as a snapshot (temporary file, fsync, rename, fsync of the directory).
    // Runs by itself when dead records outnumber live ones.
    Result<void> compact();

    // The message file opened for reading, found again by base name when another reader renamed it.
    Result<Fd> open_message(uint32_t uid);

    const std::string& maildir() const { return maildir_; }
    uint32_t uidvalidity() const { return uidvalidity_; }
    uint32_t uidnext() const { return uidnext_; }
    uint64_t highest_modseq() const { return highest_modseq_; }
    // Ascending UIDs; a message's sequence number is its position + 1.
    const std::vector<Message>& messages() const { return messages_; }
    const Message* find(uint32_t uid) const;
    const std::vector<std::string>& keywords() const { return keywords_; }
    // UIDs expunged after `modseq` (RFC 7162 VANISHED (EARLIER)); nullopt when the index no longer
    // remembers that far back (the caller then names every UID below UIDNEXT it does not hold).
    std::optional<UidRanges> expunged_since(uint64_t modseq) const { return expunged_.since(modseq); }
    // RFC 3501 \Recent: UIDs up to this one have been seen by an IMAP session.
    uint32_t recent_upto() const { return recent_upto_; }
    // Records that a session has now seen every UID below UIDNEXT; the watermark before, so that
    // exactly one session finds each message \Recent.
    Result<uint32_t> claim_recent();
    // Records in the current file (for compaction and its tests).
    size_t records() const { return records_; }

private:
    // new/ and cur/ and the index file as a full sync found them before listing: while they
    // stay the same, nothing can have been renamed, delivered or removed since.
    struct DirStamp {
        ino_t new_ino = 0, cur_ino = 0, index_ino = 0;
        int64_t new_mtime_ns = 0, cur_mtime_ns = 0;
        bool operator==(const DirStamp&) const = default;
    };
    std::optional<DirStamp> dir_stamp() const;
    Result<SyncStats> full_sync();

    Index() = default;
    Result<void> read_new(bool writer);
    // Before records up to `size` are used: the index fdatasync'd when the lock file's mark says
    // records below `size` may not be on disk. Returns how far the file may be used: `size`, or
    // where the unsynced records start when the sync failed.
    uint64_t make_durable(uint64_t size);
    Result<void> reset_from_start();
    Result<void> apply(const Record& r);
    Result<void> append_records(std::vector<Record>& recs, bool durable);
    Result<void> rebuild(const std::string& why);
    Result<void> write_snapshot(uint32_t uidvalidity, bool renumber);
    Result<void> compact_if_due();
    uint32_t next_uidvalidity() const;
    Result<std::optional<std::string>> locate(const std::string& base) const;
    Result<std::optional<std::string>> rename_for_flags(Message& m, FlagMode mode, std::string_view letters);
    Message* find_mut(uint32_t uid);
    Fd open_file(const std::string& file);
    Result<uint32_t> keyword_id(const std::string& name, std::vector<std::string>& pending, RecordBatch& b);

    std::string maildir_;
    Fd lock_fd_;
    Fd file_;
    // new/ and cur/, opened by the first open_message: a message then costs the path walk of its
    // name only, not of the whole Maildir path (a fifth of a FETCH of headers).
    Fd new_dir_, cur_dir_;
    ino_t ino_ = 0;
    uint64_t offset_ = 0;   // bytes of file_ read and applied
    uint64_t durable_to_ = 0;  // bytes of file_ known to be on disk
    std::string sync_failed_;     // why a reader's fdatasync failed: the records from
    uint64_t sync_failed_at_ = 0;  // this offset on are not used, and a writer rebuilds the index
    size_t records_ = 0;
    uint32_t uidvalidity_ = 0;
    uint32_t uidvalidity_above_ = 0;
    uint32_t uidnext_ = 1;
    uint64_t highest_modseq_ = 0;
    std::vector<Message> messages_;
    std::unordered_map<std::string, uint32_t> by_base_;
    std::vector<std::string> keywords_;
    CacheFile cache_{""};
    bool cache_current_ = false;  // cache_ caught up since the last refresh or sync
    size_t old_cache_records_ = 0;  // C records in the index (written before the cache file): a compaction drops them
    ExpungeLog expunged_;     // kept across compaction as V records
    uint32_t recent_upto_ = 0;
    uint32_t last_uid_ = 0;   // the highest UID an append record of this file gave
    bool damaged_ = false;    // a reader found something only a writer may repair
    std::unordered_map<std::string, std::string> carried_files_;  // base -> file, across a re-read
    std::optional<DirStamp> synced_stamp_;  // of the last full sync, when its mtimes were settled
};

// ferry-mda's path: after a delivery's Maildir commit, gives `name` (in new/) the next UID under
// the lock, reading only the last record of the index (O(1) in the folder size). The record is
// written, not synced: the lock file's mark makes the first reader fdatasync the index before any
// client sees the UID (ferry-mailstore(5), DURABILITY). An index that cannot do this (missing,
// damaged tail) is opened in full. An error never undoes the delivery: the next sync gives the
// message its UID.
Result<uint32_t> append_delivered(const std::string& maildir, const std::string& name);
// The same for several names of one batch of deliveries to the folder: their UIDs in this order,
// in one append.
Result<std::vector<uint32_t>> append_delivered(const std::string& maildir, std::span<const std::string> names);

}  // namespace ferry::store
