// Blocking client sockets with a deadline, for scanners that worker threads talk to (clamd, spamd; ferry-smtpd and ferry-mda).
#pragma once

#include <cstddef>
#include <string>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry::scan {

// CLOCK_MONOTONIC seconds: deadlines are in these.
double now();
// Waits for `events` (POLLIN, POLLOUT) on fd until the deadline: false on timeout or error.
bool wait_for(int fd, short events, double deadline);
// Sends all of p[0..n) on a non-blocking socket before the deadline.
bool send_all(int fd, const char* p, size_t n, double deadline);
// Connects to a Unix socket path (starting with "/") or host:port ("[::1]:783"), not past the
// deadline; the socket is non-blocking.
Result<Fd> connect_to(const std::string& address, double deadline);

}  // namespace ferry::scan
