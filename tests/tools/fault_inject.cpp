// LD_PRELOAD shim for tests: fails write(), fsync() and unlink() under a path prefix, as a full or broken disk would.
//
//   FERRY_FAULT_PREFIX   only files whose path (from /proc/self/fd, or unlink's argument) starts with this are touched
//   FERRY_FAULT_ERRNO    ENOSPC (default) or EIO
//   FERRY_FAULT_CALL     write (default): writes past FERRY_FAULT_AFTER bytes fail; fsync: every fsync fails;
//                        unlink: every unlink fails; several calls are separated by commas ("fsync,unlink")
//   FERRY_FAULT_AFTER    bytes the matching files may take in all before writes fail (default 0)
//   FERRY_FAULT_TIMES    how many matching calls fail in all, after which the disk is well again
//                        (default: no end)
//   FERRY_FAULT_DELAY_MS each matching call first sleeps this long, as a slow disk does; with
//                        FERRY_FAULT_ERRNO=none it then succeeds
//   FERRY_FAULT_WHILE    when set: faults only while a file of this path exists (a test ends the fault)
//   FERRY_FAULT_HOLD_DIR when set: each matching fsync first creates <dir>/held.<n> (n = 1, 2, ... in
//                        call order) and waits until the test removes it, as a disk that has not yet
//                        answered; with FERRY_FAULT_ERRNO=none it then succeeds
#include <dlfcn.h>
#include <unistd.h>

#include <time.h>

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

// 0 for "none": the call is only delayed.
int fault_errno() {
    const char* e = env("FERRY_FAULT_ERRNO", "ENOSPC");
    if (std::strcmp(e, "none") == 0) return 0;
    return std::strcmp(e, "EIO") == 0 ? EIO : ENOSPC;
}

void delay() {
    long ms = std::strtol(env("FERRY_FAULT_DELAY_MS", "0"), nullptr, 10);
    if (ms <= 0) return;
    timespec ts{ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

std::atomic<long long> faults{0};

// Counts one more fault against FERRY_FAULT_TIMES: false once they are used up.
bool fault_left() {
    const char* times = std::getenv("FERRY_FAULT_TIMES");
    if (!times || !*times) return true;
    return faults.fetch_add(1) < std::strtoll(times, nullptr, 10);
}

std::atomic<long> holds{0};

// FERRY_FAULT_HOLD_DIR: announces the call by a file and waits until the test removes it.
void hold() {
    const char* dir = std::getenv("FERRY_FAULT_HOLD_DIR");
    if (!dir || !*dir) return;
    std::string path = std::string(dir) + "/held." + std::to_string(holds.fetch_add(1) + 1);
    if (FILE* f = std::fopen(path.c_str(), "w")) std::fclose(f);
    timespec tick{0, 5000000L};
    while (access(path.c_str(), F_OK) == 0) nanosleep(&tick, nullptr);
}

// For a matching fsync or fdatasync: delays, then -1 with the fault's errno, or 0 to go on.
int sync_fault() {
    int err = fault_errno();
    if (!fault_left()) return 0;
    hold();
    delay();
    if (err == 0) return 0;
    errno = err;
    return -1;
}

bool failing(const char* call) {
    std::string calls = std::string(",") + env("FERRY_FAULT_CALL", "write") + ",";
    return calls.find(std::string(",") + call + ",") != std::string::npos;
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
    if (used >= limit && fault_errno() != 0 && fault_left()) {
        delay();
        errno = fault_errno();
        return -1;
    }
    if (used >= limit) return real(fd, buf, count);
    // A short write up to the limit, as a filling disk gives; the next write fails.
    size_t allowed = count < limit - used ? count : static_cast<size_t>(limit - used);
    ssize_t n = real(fd, buf, allowed);
    if (n > 0) written += static_cast<unsigned long long>(n);
    return n;
}

extern "C" int fsync(int fd) {
    static auto real = next<int (*)(int)>("fsync");
    if (failing("fsync") && matches(fd) && sync_fault() != 0) return -1;
    return real(fd);
}

extern "C" int fdatasync(int fd) {
    static auto real = next<int (*)(int)>("fdatasync");
    if (failing("fsync") && matches(fd) && sync_fault() != 0) return -1;
    return real(fd);
}

extern "C" int unlink(const char* path) {
    static auto real = next<int (*)(const char*)>("unlink");
    const char* prefix = std::getenv("FERRY_FAULT_PREFIX");
    const char* switch_file = std::getenv("FERRY_FAULT_WHILE");
    bool on = !switch_file || !*switch_file || access(switch_file, F_OK) == 0;
    if (on && failing("unlink") && prefix && *prefix && std::strncmp(path, prefix, std::strlen(prefix)) == 0) {
        errno = fault_errno();
        return -1;
    }
    return real(path);
}
