// Which senders a vacation handle answered, and until when: <maildir>/sieve/.vacation, kept across restarts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry::mda {

// One answer remembered: no other reply to `sender` for `handle` before `until` (RFC 5230 4.2).
struct VacationEntry {
    int64_t until = 0;
    std::string handle;  // fnv1a64 of the :handle, in hex: a fixed length whatever the script wrote
    std::string sender;  // lower case
};

// The file, ferry-mda(8) VACATION: a line "ferry-vacation 1", then one line per entry,
// "<until> <handle> <sender>". A line that cannot be read is skipped (so is a file of another
// version): at worst one more reply goes, never a flood, since each reply is recorded before the
// next message is looked at.
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

// The memory of one account on disk, locked while it is held: ferry-mda delivers to one account
// on several workers at once, and two messages from one sender must not both see "not answered".
// The lock is flock(2) on <dir>/.vacation.lock; the file is replaced whole (temp, fsync, rename,
// fsync of the directory), so a crash leaves the old or the new one.
class VacationMemory {
public:
    // Creates `dir` (mode 0700) when missing, takes the lock (waiting for it) and reads the file.
    static Result<VacationMemory> open(const std::string& dir);

    bool answered(std::string_view handle, std::string_view sender, int64_t now) const;
    Result<void> remember(std::string_view handle, std::string_view sender, int64_t until, int64_t now,
                          size_t max_entries);
    const std::vector<VacationEntry>& entries() const { return entries_; }

private:
    VacationMemory(std::string path, Fd lock) : path_(std::move(path)), lock_(std::move(lock)) {}
    std::string path_;
    Fd lock_;  // closing it releases the flock
    std::vector<VacationEntry> entries_;
};

}  // namespace ferry::mda
