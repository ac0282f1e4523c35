// RequestDeadline: ends a request (a command line, a message) that a peer trickles in too slowly
// for the idle timer to notice: one byte a second is never silence, but it misses this deadline.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <functional>

#include "common/event/event.hpp"

namespace ferry {

// Seconds a request of `bytes` may take: `grace`, plus one second per `min_rate` bytes received
// (no extension when min_rate is 0). A grace of 0 means no deadline (returns a negative value).
double request_allowance(double grace, uint64_t min_rate, uint64_t bytes);

class RequestDeadline {
public:
    // `expired` runs from the loop when a running request passes its allowance.
    RequestDeadline(event_base* base, double grace, uint64_t min_rate, std::function<void()> expired);
    RequestDeadline(const RequestDeadline&) = delete;
    RequestDeadline& operator=(const RequestDeadline&) = delete;

    // A request starts now, unless one is already running.
    void begin();
    // `n` more bytes of the running request arrived: the allowance grows by n / min_rate.
    void add(uint64_t n);
    // The request is complete (or abandoned): no deadline until the next begin().
    void end();
    bool running() const { return running_; }
    // Of the running request, or of the last one after it expired (for the log line).
    uint64_t bytes() const { return bytes_; }
    double elapsed() const;

private:
    static void on_timer(evutil_socket_t, short, void* arg) noexcept;
    void arm();

    double grace_;
    uint64_t min_rate_;
    std::function<void()> expired_;
    EventPtr timer_;
    bool running_ = false;
    uint64_t bytes_ = 0;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace ferry
