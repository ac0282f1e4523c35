// LD_PRELOAD shim for tests: fails write() and fsync() on files under a path prefix, as a full or broken disk would.
//
//   FERRY_FAULT_PREFIX   only files whose path (from /proc/self/fd) starts with this are touched
//   FERRY_FAULT_ERRNO    ENOSPC (default) or EIO
//   FERRY_FAULT_CALL     write (default): writes past FERRY_FAULT_AFTER bytes fail; fsync: every fsync fails
//   FERRY_FAULT_AFTER    bytes the matching files may take in all before writes fail (default 0)
//   FERRY_FAULT_WHILE    when set: faults only while a file of this path exists (a test ends the fault)
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

const char* env(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

// True when fd is a file under FERRY_FAULT_PREFIX; sockets and pipes never match.
bool matches(int fd) {
    const char* prefix = std::getenv("FERRY_FAULT_PREFIX");
    if (!prefix || !*prefix) return false;
    const char* switch_file = std::getenv("FERRY_FAULT_WHILE");
    if (switch_file && *switch_file && access(switch_file, F_OK) != 0) return false;
    char link[64];
    char path[4096];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return false;
    path[n] = '\0';
    return std::strncmp(path, prefix, std::strlen(prefix)) == 0;
}

int fault_errno() {
    return std::strcmp(env("FERRY_FAULT_ERRNO", "ENOSPC"), "EIO") == 0 ? EIO : ENOSPC;
}

bool failing(const char* call) {
    return std::strcmp(env("FERRY_FAULT_CALL", "write"), call) == 0;
}

std::atomic<unsigned long long> written{0};

template <typename F>
F next(const char* name) {
    return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" ssize_t write(int fd, const void* buf, size_t count) {
    static auto real = next<ssize_t (*)(int, const void*, size_t)>("write");
    if (count == 0 || !failing("write") || !matches(fd)) return real(fd, buf, count);
    unsigned long long limit = std::strtoull(env("FERRY_FAULT_AFTER", "0"), nullptr, 10);
    unsigned long long used = written.load();
    if (used >= limit) {
        errno = fault_errno();
        return -1;
    }
    // A short write up to the limit, as a filling disk gives; the next write fails.
    size_t allowed = count < limit - used ? count : static_cast<size_t>(limit - used);
    ssize_t n = real(fd, buf, allowed);
    if (n > 0) written += static_cast<unsigned long long>(n);
    return n;
}

extern "C" int fsync(int fd) {
    static auto real = next<int (*)(int)>("fsync");
    if (failing("fsync") && matches(fd)) {
        errno = fault_errno();
        return -1;
    }
    return real(fd);
}

extern "C" int fdatasync(int fd) {
    static auto real = next<int (*)(int)>("fdatasync");
    if (failing("fsync") && matches(fd)) {
        errno = fault_errno();
        return -1;
    }
    return real(fd);
}
