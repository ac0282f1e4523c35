// A non-blocking TCP connect (IPv4 or IPv6) on the event loop, bounded by relay_connect_timeout.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"
#include "common/event/event.hpp"

namespace ferry::relay {

class Connector {
public:
    using Done = std::function<void(Result<Fd>)>;
    // `done` runs once, from the loop: the connected non-blocking socket, or why not. Destroying
    // the Connector first cancels it (done never runs).
    Connector(event_base* base, const std::string& address, uint16_t port, double timeout, Done done);
    ~Connector();
    Connector(const Connector&) = delete;
    Connector& operator=(const Connector&) = delete;

private:
    static void on_event(evutil_socket_t, short what, void* arg) noexcept;
    void finish(Result<Fd> r);

    Fd fd_;
    Done done_;
    EventPtr ev_;
    std::string where_;
    std::optional<Error> early_;  // a failure before the connect was under way
};

}  // namespace ferry::relay
