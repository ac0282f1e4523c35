// Spare queue files: the files of removed messages kept in spare/ for reuse, so that accepting a message allocates no inode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry::spool {

// spare/<name>: the file of a removed message, kept for its inode and blocks, never read
// (ferry-spool(5), DIRECTORY LAYOUT).
inline constexpr const char* kSpare = "spare";
// At most this many files wait in spare/, each at most kSpareMaxSize bytes; qmgr unlinks the
// others, so spare/ holds little disk and an old message's bytes only until the file serves again.
inline constexpr size_t kSpareMax = 256;
inline constexpr uint64_t kSpareMaxSize = 256 * 1024;

// Removes queue/<id> of a message whose every recipient is final (qmgr's removal): renamed to
// spare/<id> while spare/ has room and the file is small, unlinked otherwise. Either way
// queue/<id> is gone when this returns ok; a crash before queue/ is synced may bring it back whole.
Result<void> retire_queue_file(const std::string& spool_dir, const std::string& id);

// Names of spares a writer may take, in two steps, so that a crash never brings a queue name back
// onto bytes of a new message: list_spares() reads spare/ (at most every 50 ms, while few names
// are on offer) before the writer's fsync of queue/; offer_spares() hands out what it read once
// that fsync succeeded, when whatever qmgr renamed from queue/ before the listing is gone from
// queue/ on disk. Both run in a commit (Writer::publish and settle): off the event loop, with no
// fsync of their own.
inline constexpr size_t kSpareListed = 128;
std::vector<std::string> list_spares(const std::string& spool_dir);
void offer_spares(const std::string& spool_dir, std::vector<std::string> names);

// One of the offered spares renamed to `incoming_path` (never replacing a file there) and locked
// with flock(2); its old bytes are still there, for the writer to overwrite and cut (ftruncate)
// at its end. Invalid when there is none to take (none on offer, all gone or locked, the name
// taken), and the caller creates the file instead.
Fd take_spare(const std::string& spool_dir, const std::string& incoming_path);

}  // namespace ferry::spool
