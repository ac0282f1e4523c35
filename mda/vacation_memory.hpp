// What an account's Sieve rules remember across restarts: vacation answers (<maildir>/sieve/.vacation) and seen message ids (.duplicate).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry::mda {

// One thing remembered until `until` (seconds since the epoch): `key` a fixed-length hash, `value`
// what goes with it (the rest of its line, no line break).
struct MemoryEntry {
    int64_t until = 0;
    std::string key;
    std::string value;
};

// A memory file: a version line, then one line per entry, "<until> <key> <value>". A line that
// cannot be read is skipped (so is a file of another version): at worst something is forgotten.
std::vector<MemoryEntry> parse_memory(std::string_view text, std::string_view version);
std::string format_memory(const std::vector<MemoryEntry>& entries, std::string_view version);

// Drops the entries expired at `now`; when more than `max_entries` are left, those that expire first.
void prune_memory(std::vector<MemoryEntry>& entries, int64_t now, size_t max_entries);

// One memory file of an account, locked while it is held: ferry-mda delivers to one account on
// several workers at once, and two of them must not both write what they read. The lock is
// flock(2) on <dir>/.<name>.lock; the file <dir>/.<name> is replaced whole (temp, fsync, rename,
// fsync of the directory), so a crash leaves the old or the new one.
class MemoryFile {
public:
    // Creates `dir` (mode 0700) when missing, takes the lock (waiting for it) and reads the file.
    static Result<MemoryFile> open(const std::string& dir, std::string_view name, std::string_view version);
    // The entries without the lock: the file is only ever replaced whole, so a reader sees one version.
    static Result<std::vector<MemoryEntry>> read(const std::string& dir, std::string_view name, std::string_view version);

    std::vector<MemoryEntry>& entries() { return entries_; }
    const std::vector<MemoryEntry>& entries() const { return entries_; }
    Result<void> write() const;

private:
    MemoryFile(std::string path, std::string version, Fd lock)
        : path_(std::move(path)), version_(std::move(version)), lock_(std::move(lock)) {}
    std::string path_, version_;
    Fd lock_;  // closing it releases the flock
    std::vector<MemoryEntry> entries_;
};

// ---- vacation (RFC 5230 4.2): key the hash of the :handle, value the sender in lower case;
// ferry-mda(8) VACATION. Each reply is recorded before the next message is looked at, so a damaged
// file costs at most one more reply, never a flood.
using VacationEntry = MemoryEntry;
inline constexpr std::string_view kVacationVersion = "ferry-vacation 1";
std::vector<VacationEntry> parse_vacation_memory(std::string_view text);
std::string format_vacation_memory(const std::vector<VacationEntry>& entries);

// The entry's key parts as stored.
std::string vacation_handle_key(std::string_view handle);
std::string vacation_sender_key(std::string_view sender);

// Pure operations on the entries, `now` given (tests bring their own clock).
bool vacation_answered(const std::vector<VacationEntry>& entries, std::string_view handle, std::string_view sender,
                       int64_t now);
// Adds or renews the entry, drops the expired ones, and when more than `max_entries` are left
// drops those that expire first.
void vacation_remember(std::vector<VacationEntry>& entries, std::string_view handle, std::string_view sender,
                       int64_t until, int64_t now, size_t max_entries);

class VacationMemory {
public:
    static Result<VacationMemory> open(const std::string& dir);

    bool answered(std::string_view handle, std::string_view sender, int64_t now) const;
    Result<void> remember(std::string_view handle, std::string_view sender, int64_t until, int64_t now,
                          size_t max_entries);
    const std::vector<VacationEntry>& entries() const { return file_.entries(); }

private:
    explicit VacationMemory(MemoryFile f) : file_(std::move(f)) {}
    MemoryFile file_;
};

// ---- duplicate (RFC 7352), ferry-mda(8) SIEVE: key the hash of the :handle and the unique id
// (never the id itself), value the queue id of the delivery that recorded it ("-" for none), so
// that the same delivery tried again after a crash is not a duplicate of itself.
inline constexpr std::string_view kDuplicateVersion = "ferry-duplicate 1";
inline constexpr std::string_view kDuplicateName = "duplicate";
std::string duplicate_key(std::string_view handle, std::string_view id);

// Whether `key` was recorded by another delivery than `qid` and has not expired at `now`.
bool duplicate_seen(const std::vector<MemoryEntry>& entries, std::string_view key, std::string_view qid, int64_t now);
// Records `key` for `period` seconds from `now`: a new entry, or (with `last`, or an expired or
// own entry) a renewed one; without `last` an entry of another delivery keeps its first time
// (RFC 7352 3). Then prunes to `max_entries`.
void duplicate_remember(std::vector<MemoryEntry>& entries, std::string_view key, std::string_view qid, int64_t period,
                        bool last, int64_t now, size_t max_entries);

}  // namespace ferry::mda
