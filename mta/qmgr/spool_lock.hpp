// One ferry-qmgr per spool: an exclusive flock on spool_dir/qmgr.lock, held for the process's life.
#pragma once

#include <string>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry::qmgr {

inline constexpr const char* kLockFile = "qmgr.lock";

// Takes the lock without waiting and writes this process's id into the file. When another process
// holds it the error says "another ferry-qmgr holds <path> (pid N)". The lock goes with the
// returned descriptor (and with the process, however it ends).
Result<Fd> lock_spool(const std::string& path);

}  // namespace ferry::qmgr
