// AcceptListener: an owned evconnlistener that backs off, instead of spinning, when accept() fails.
//
// When accept() fails for a lasting reason (EMFILE/ENFILE: out of file descriptors; ENOBUFS/ENOMEM),
// the pending connection stays in the backlog and keeps the socket readable, so a bare evconnlistener
// is called again at once: 100% CPU and a log line per pass. An AcceptListener logs the first failure
// of such a run, stops accepting, and tries again from a timer; the first accept that works again is
// logged too. Connections wait in the kernel's backlog meanwhile.
//
// Use:
//   auto l = AcceptListener::open(base, std::move(fd), "smtp 127.0.0.1:25", on_accept, this);
//   if (!l) return l.error();
//   listener_ = std::move(l.value());
#pragma once

#include <event2/event.h>
#include <event2/listener.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry {

class AcceptListener {
public:
    static constexpr std::chrono::milliseconds kDefaultRetry{1000};

    AcceptListener();
    AcceptListener(AcceptListener&&) noexcept;
    AcceptListener& operator=(AcceptListener&&) noexcept;
    AcceptListener(const AcceptListener&) = delete;
    AcceptListener& operator=(const AcceptListener&) = delete;
    ~AcceptListener();

    // Accepts on the listening socket `fd` (which it owns from now on, closed on failure too) and
    // hands each connection to `cb(listener, fd, addr, len, arg)`. `name` ("smtp 127.0.0.1:25")
    // goes into the log lines. Starts enabled.
    static Result<AcceptListener> open(event_base* base, Fd fd, std::string name, evconnlistener_cb cb, void* arg,
                                       std::chrono::milliseconds retry = kDefaultRetry);

    // Stop and restart accepting (e.g. until start-up is complete). While backing off after an
    // accept error, enable() takes effect when the retry timer fires.
    void enable();
    void disable();

    // Stops listening and closes the socket now.
    void reset();

    explicit operator bool() const { return state_ != nullptr; }
    evconnlistener* get() const;
    // Failed accept() calls since the last one that worked (0 in normal operation).
    unsigned failures() const;

    struct State;

private:
    std::unique_ptr<State> state_;
};

}  // namespace ferry
