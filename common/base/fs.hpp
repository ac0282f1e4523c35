// Filesystem durability helpers shared by the spool, the Maildir store and the account database.
#pragma once

#include <string>

#include "common/base/result.hpp"

namespace ferry {

// fsync(2) of a directory, so a file created, renamed or linked into it survives a crash.
Result<void> fsync_dir(const std::string& dir);

// Writes all bytes, retrying on EINTR; for blocking sockets and files.
Result<void> write_all(int fd, const char* data, size_t len);

}  // namespace ferry
