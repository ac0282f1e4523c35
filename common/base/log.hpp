// Syslog-style logging to stderr and/or syslog: program, severity, then the message.
#pragma once

#include <string>

namespace ferry::log {

enum class Level { debug = 0, info = 1, warning = 2, error = 3 };

// target: "stderr", "syslog" or "both".
void init(const std::string& program, const std::string& target = "stderr", const std::string& level = "info");
const std::string& program();

void debug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// warn/error append ": <strerror(errno)>"; the x variants do not (as OpenBSD's log_warn/log_warnx).
void warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void warnx(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void errorx(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// For an invariant break: logs and aborts.
[[noreturn]] void panic(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace ferry::log
