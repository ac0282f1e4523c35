// Filesystem durability helpers shared by the spool, the Maildir store and the account database.
#include "common/base/fs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common/base/fd.hpp"

namespace ferry {

Result<void> fsync_dir(const std::string& dir) {
    Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return sys_error("cannot open directory " + dir);
    if (fsync(fd.get()) != 0) return sys_error("fsync " + dir);
    return {};
}


Result<void> write_all(int fd, const char* data, size_t len) {
    while (len > 0) {
        ssize_t n = ::write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return sys_error("write");
        }
        data += n;
        len -= static_cast<size_t>(n);
    }
    return {};
}

}  // namespace ferry
