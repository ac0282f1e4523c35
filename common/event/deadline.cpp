// RequestDeadline: ends a request (a command line, a message) that a peer trickles in too slowly
// for the idle timer to notice: one byte a second is never silence, but it misses this deadline.
#include "common/event/deadline.hpp"

#include "common/base/log.hpp"

namespace ferry {

double request_allowance(double grace, uint64_t min_rate, uint64_t bytes) {
    if (grace <= 0) return -1;
    if (min_rate == 0) return grace;
    return grace + static_cast<double>(bytes) / static_cast<double>(min_rate);
}

RequestDeadline::RequestDeadline(event_base* base, double grace, uint64_t min_rate, std::function<void()> expired)
    : grace_(grace), min_rate_(min_rate), expired_(std::move(expired)) {
    timer_.reset(evtimer_new(base, on_timer, this));
    if (!timer_) log::panic("RequestDeadline: evtimer_new failed");
}

double RequestDeadline::elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void RequestDeadline::begin() {
    if (running_ || grace_ <= 0) return;
    running_ = true;
    bytes_ = 0;
    start_ = std::chrono::steady_clock::now();
    arm();
}

void RequestDeadline::add(uint64_t n) {
    if (!running_) return;
    bytes_ += n;
    // Re-arming on every read is a cheap heap update; without a rate the deadline stays where it is.
    if (min_rate_ > 0 && n > 0) arm();
}

void RequestDeadline::end() {
    running_ = false;
    bytes_ = 0;
    evtimer_del(timer_.get());
}

void RequestDeadline::arm() {
    double left = request_allowance(grace_, min_rate_, bytes_) - elapsed();
    timeval tv = to_timeval(left > 0 ? left : 0);
    evtimer_add(timer_.get(), &tv);
}

void RequestDeadline::on_timer(evutil_socket_t, short, void* arg) noexcept {
    auto* self = static_cast<RequestDeadline*>(arg);
    if (!self->running_) return;
    self->running_ = false;
    self->expired_();
}

}  // namespace ferry
