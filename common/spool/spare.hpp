// Spare queue files: the files of removed messages kept in spare/ for reuse, so that accepting a message allocates no inode.
#pragma once

#include <cstddef>
#include <string>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry::spool {

// spare/<name>: an emptied file of a removed message, never read (ferry-spool(5), DIRECTORY LAYOUT).
inline constexpr const char* kSpare = "spare";
// At most this many files wait in spare/; qmgr unlinks what does not fit.
inline constexpr size_t kSpareMax = 256;

// Removes queue/<id> of a message whose every recipient is final (qmgr's removal): renamed to
// spare/<id> and emptied under its lock while spare/ has room, unlinked otherwise. Either way
// queue/<id> is gone when this returns ok, and a crash before its directory is synced may bring it
// back: whole (the rename or unlink not on disk), or empty, which qmgr then removes.
Result<void> retire_queue_file(const std::string& spool_dir, const std::string& id);

// A spare file renamed to `incoming_path` (never replacing a file there), locked with flock(2) and
// empty: a new queue file without a new inode. Invalid when there is none to take (none left, all
// locked, the name taken), and the caller creates the file instead.
Fd take_spare(const std::string& spool_dir, const std::string& incoming_path);

}  // namespace ferry::spool
