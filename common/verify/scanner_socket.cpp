// Blocking client sockets with a deadline, for scanners that worker threads talk to (clamd, spamd; ferry-smtpd and ferry-mda).
#include "common/verify/scanner_socket.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace ferry::scan {

double now() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Waits for `events` on fd until the deadline: false on timeout or error.
bool wait_for(int fd, short events, double deadline) {
    for (;;) {
        double left = deadline - now();
        if (left <= 0) return false;
        pollfd p{fd, events, 0};
        int r = ::poll(&p, 1, static_cast<int>(left * 1000) + 1);
        if (r > 0) return true;
        if (r == 0 || errno != EINTR) return false;
    }
}

bool send_all(int fd, const char* p, size_t n, double deadline) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= static_cast<size_t>(w);
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_for(fd, POLLOUT, deadline)) return false;
        } else {
            return false;
        }
    }
    return true;
}

Result<Fd> connect_to(const std::string& address, double deadline) {
    int family = AF_UNIX;
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (!address.empty() && address[0] == '/') {
        auto* un = reinterpret_cast<sockaddr_un*>(&ss);
        if (address.size() >= sizeof un->sun_path) return make_error(0, "", "socket path too long");
        un->sun_family = AF_UNIX;
        std::memcpy(un->sun_path, address.data(), address.size());
        len = sizeof(sockaddr_un);
    } else {
        size_t colon = address.rfind(':');
        if (colon == std::string::npos) return make_error(0, "", "not host:port or a socket path");
        std::string host = address.substr(0, colon), port = address.substr(colon + 1);
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        addrinfo hints{}, *res = nullptr;
        hints.ai_socktype = SOCK_STREAM;
        if (int e = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); e != 0 || !res)
            return make_error(0, "", std::string("cannot resolve: ") + gai_strerror(e));
        family = res->ai_family;
        std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
        len = res->ai_addrlen;
        freeaddrinfo(res);
    }
    Fd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return sys_error("socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) return sys_error("connect");
        if (!wait_for(fd.get(), POLLOUT, deadline)) return make_error(0, "", "connect: timed out");
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &l);
        if (err != 0) return sys_error("connect", err);
    }
    return fd;
}

}  // namespace ferry::scan
