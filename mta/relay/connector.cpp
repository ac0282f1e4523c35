// A non-blocking TCP connect (IPv4 or IPv6) on the event loop, bounded by relay_connect_timeout.
#include "mta/relay/connector.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ferry::relay {

namespace {

// Fills `ss` from a numeric address; the length, 0 when it is not one.
socklen_t make_sockaddr(const std::string& address, uint16_t port, sockaddr_storage& ss) {
    std::memset(&ss, 0, sizeof ss);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return sizeof *v4;
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return sizeof *v6;
    }
    return 0;
}

}  // namespace

Connector::Connector(event_base* base, const std::string& address, uint16_t port, double timeout, Done done)
    : done_(std::move(done)), where_(address + " port " + std::to_string(port)) {
    sockaddr_storage ss;
    socklen_t len = make_sockaddr(address, port, ss);
    if (len == 0) {
        early_ = make_error(0, "", "not a numeric address: " + address);
    } else {
        fd_ = Fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd_.valid()) early_ = sys_error("socket for " + where_);
        else if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS)
            early_ = sys_error("connect to " + where_);
    }
    if (!early_) {
        ev_.reset(event_new(base, fd_.get(), EV_WRITE, on_event, this));
        timeval tv = to_timeval(timeout);
        event_add(ev_.get(), &tv);
        return;
    }
    // An early failure is reported from the loop too, never from inside the constructor.
    ev_.reset(event_new(base, -1, 0, [](evutil_socket_t, short, void* arg) noexcept {
        auto* self = static_cast<Connector*>(arg);
        self->finish(*self->early_);
    }, this));
    event_active(ev_.get(), 0, 0);
}

Connector::~Connector() = default;

void Connector::on_event(evutil_socket_t, short what, void* arg) noexcept {
    auto* self = static_cast<Connector*>(arg);
    if (what & EV_TIMEOUT) return self->finish(make_error(0, "", "connect to " + self->where_ + ": timed out"));
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(self->fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) return self->finish(sys_error("connect to " + self->where_, err));
    self->finish(std::move(self->fd_));
}

void Connector::finish(Result<Fd> r) {
    auto done = std::move(done_);
    done_ = nullptr;
    if (done) done(std::move(r));  // may destroy this Connector: nothing after
}

}  // namespace ferry::relay
