// Filesystem durability helpers shared by the spool, the Maildir store and the account database.
#include "common/fs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "common/fd.hpp"

namespace ferry {

Result<void> fsync_dir(const std::string& dir) {
    Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return sys_error("cannot open directory " + dir);
    if (fsync(fd.get()) != 0) return sys_error("fsync " + dir);
    return {};
}

}  // namespace ferry
