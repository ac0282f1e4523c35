// Syslog-style logging: one line per event, to stderr and/or syslog (facility mail).
#include "common/base/log.hpp"

#include <pthread.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace ferry::log {
namespace {

std::string g_program = "ferry";
bool g_stderr = true;
bool g_syslog = false;
Level g_level = Level::info;
std::atomic<int> g_pid{0};  // getpid() once per process: the child of a fork() finds it reset

const char* level_name(Level l) {
    switch (l) {
        case Level::debug: return "debug";
        case Level::info: return "info";
        case Level::warning: return "warning";
        case Level::error: return "error";
    }
    return "?";
}

int syslog_priority(Level l) {
    switch (l) {
        case Level::debug: return LOG_DEBUG;
        case Level::info: return LOG_INFO;
        case Level::warning: return LOG_WARNING;
        case Level::error: return LOG_ERR;
    }
    return LOG_INFO;
}

// Control characters as \xHH: a message is one line whatever peer text it quotes, so no client
// can forge a log line (for fail2ban and the like) or hide text with CR or escape sequences.
// `out` holds 4 times `in` plus the NUL; no allocation, so logging never throws.
void escape_controls(const char* in, char* out) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (; *in; ++in) {
        auto c = static_cast<unsigned char>(*in);
        if (c >= 0x20 && c != 0x7f) {
            *out++ = *in;
            continue;
        }
        *out++ = '\\';
        *out++ = 'x';
        *out++ = kHex[c >> 4];
        *out++ = kHex[c & 15];
    }
    *out = '\0';
}

void emit(Level l, int err, const char* fmt, va_list ap) {
    if (l < g_level) return;
    char raw[4096];
    int n = vsnprintf(raw, sizeof raw, fmt, ap);
    if (n < 0) return;
    if (err && static_cast<size_t>(n) < sizeof raw)
        snprintf(raw + n, sizeof raw - static_cast<size_t>(n), ": %s", strerror(err));
    char msg[4 * sizeof raw];
    escape_controls(raw, msg);
    if (g_syslog) syslog(syslog_priority(l), "%s: %s", level_name(l), msg);
    if (g_stderr) {
        timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        // Daemons log per message: the date and time to the second are formatted once a second per thread.
        thread_local time_t stamped = -1;
        thread_local char when[40];
        if (ts.tv_sec != stamped) {
            tm t;
            gmtime_r(&ts.tv_sec, &t);
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &t);
            stamped = ts.tv_sec;
        }
        int pid = g_pid.load(std::memory_order_relaxed);
        if (!pid) g_pid.store(pid = static_cast<int>(getpid()), std::memory_order_relaxed);
        char line[sizeof msg + 160];
        int n = snprintf(line, sizeof line, "%s.%03ldZ %s[%d]: %s: %s\n", when, ts.tv_nsec / 1000000,
                         g_program.c_str(), pid, level_name(l), msg);
        if (n < 0) return;
        size_t len = std::min(static_cast<size_t>(n), sizeof line - 1);
        line[len - 1] = '\n';
        // One write(2) per line so lines from concurrent processes and threads do not interleave.
        for (size_t done = 0; done < len;) {
            ssize_t w = write(STDERR_FILENO, line + done, len - done);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            done += static_cast<size_t>(w);
        }
    }
}

}  // namespace

void init(const std::string& program, const std::string& target, const std::string& level) {
    g_program = program;
    g_stderr = target == "stderr" || target == "both";
    g_syslog = target == "syslog" || target == "both";
    if (level == "debug") g_level = Level::debug;
    else if (level == "warning") g_level = Level::warning;
    else if (level == "error") g_level = Level::error;
    else g_level = Level::info;
    setvbuf(stderr, nullptr, _IOLBF, 0);
    static bool at_fork = [] { return pthread_atfork(nullptr, nullptr, [] { g_pid.store(0); }) == 0; }();
    (void)at_fork;
    if (g_syslog) openlog(g_program.c_str(), LOG_PID | LOG_NDELAY, LOG_MAIL);
}

const std::string& program() { return g_program; }

#define FERRY_LOG_FN(name, lvl, with_errno)        \
    void name(const char* fmt, ...) {              \
        int err = with_errno ? errno : 0;          \
        va_list ap;                                \
        va_start(ap, fmt);                         \
        emit(lvl, err, fmt, ap);                   \
        va_end(ap);                                \
    }

FERRY_LOG_FN(debug, Level::debug, false)
FERRY_LOG_FN(info, Level::info, false)
FERRY_LOG_FN(warn, Level::warning, true)
FERRY_LOG_FN(warnx, Level::warning, false)
FERRY_LOG_FN(error, Level::error, true)
FERRY_LOG_FN(errorx, Level::error, false)

void panic(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emit(Level::error, 0, fmt, ap);
    va_end(ap);
    abort();
}

}  // namespace ferry::log
