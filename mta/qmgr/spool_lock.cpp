// One ferry-qmgr per spool: an exclusive flock on spool_dir/qmgr.lock, held for the process's life.
#include "mta/qmgr/spool_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace ferry::qmgr {

namespace {

// The holder's pid as it wrote it, for the message; "?" when it cannot be read.
std::string holder(int fd) {
    char buf[32] = {};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    std::string pid(buf, n > 0 ? static_cast<size_t>(n) : 0);
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return pid.empty() ? "?" : pid;
}

}  // namespace

Result<Fd> lock_spool(const std::string& path) {
    // Never truncated on open: the holder's pid must stay readable for a second instance.
    Fd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640));
    if (!fd.valid()) return sys_error("cannot open " + path);
    if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return make_error(0, "", "another ferry-qmgr holds " + path + " (pid " + holder(fd.get()) + ")");
        return sys_error("cannot lock " + path);
    }
    std::string pid = std::to_string(getpid()) + "\n";
    if (ftruncate(fd.get(), 0) != 0 || pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
        return sys_error("cannot write " + path);
    return fd;
}

}  // namespace ferry::qmgr
