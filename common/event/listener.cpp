// AcceptListener: an owned evconnlistener that backs off, instead of spinning, when accept() fails.
#include "common/event/listener.hpp"

#include <cerrno>
#include <cstring>

#include "common/event/event.hpp"
#include "common/base/log.hpp"

namespace ferry {

struct AcceptListener::State {
    std::string name;
    evconnlistener_cb cb = nullptr;
    void* arg = nullptr;
    std::chrono::milliseconds retry{0};
    Listener listener;
    EventPtr retry_timer;   // declared last, so freed first
    bool wanted = true;     // the owner wants connections (enable/disable)
    bool backing_off = false;
    unsigned failures = 0;  // failed accept() calls in the current run of failures

    static void on_accept(evconnlistener* l, evutil_socket_t fd, sockaddr* sa, int len, void* arg) noexcept;
    static void on_error(evconnlistener* l, void* arg) noexcept;
    static void on_retry(evutil_socket_t, short, void* arg) noexcept;
};

void AcceptListener::State::on_accept(evconnlistener* l, evutil_socket_t fd, sockaddr* sa, int len, void* arg) noexcept {
    auto* s = static_cast<State*>(arg);
    if (s->failures > 0) {
        log::info("accept on %s works again after %u failed attempts", s->name.c_str(), s->failures);
        s->failures = 0;
    }
    s->cb(l, fd, sa, len, s->arg);
}

// libevent calls this only for errors it does not retry itself (not EINTR, EAGAIN, ECONNABORTED).
void AcceptListener::State::on_error(evconnlistener*, void* arg) noexcept {
    int err = errno;
    auto* s = static_cast<State*>(arg);
    if (s->failures++ == 0)
        log::warnx("accept on %s: %s; not accepting connections, retrying every %.1f s", s->name.c_str(),
                   std::strerror(err), static_cast<double>(s->retry.count()) / 1000.0);
    evconnlistener_disable(s->listener.get());
    s->backing_off = true;
    timeval tv = to_timeval(static_cast<double>(s->retry.count()) / 1000.0);
    evtimer_add(s->retry_timer.get(), &tv);
}

void AcceptListener::State::on_retry(evutil_socket_t, short, void* arg) noexcept {
    auto* s = static_cast<State*>(arg);
    s->backing_off = false;
    if (s->wanted) evconnlistener_enable(s->listener.get());
}

Result<AcceptListener> AcceptListener::open(event_base* base, Fd fd, std::string name, evconnlistener_cb cb, void* arg,
                                            std::chrono::milliseconds retry) {
    auto s = std::make_unique<State>();
    s->name = std::move(name);
    s->cb = cb;
    s->arg = arg;
    s->retry = retry;
    s->retry_timer.reset(evtimer_new(base, State::on_retry, s.get()));
    if (!s->retry_timer) return make_error(0, "", "cannot listen on " + s->name, "evtimer_new failed");
    s->listener.reset(evconnlistener_new(base, State::on_accept, s.get(), LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                         -1, fd.get()));
    if (!s->listener) return make_error(0, "", "cannot listen on " + s->name, "evconnlistener_new failed");
    fd.release();  // the listener closes it now
    evconnlistener_set_error_cb(s->listener.get(), State::on_error);
    AcceptListener out;
    out.state_ = std::move(s);
    return out;
}

AcceptListener::AcceptListener() = default;
AcceptListener::AcceptListener(AcceptListener&&) noexcept = default;
AcceptListener& AcceptListener::operator=(AcceptListener&&) noexcept = default;
AcceptListener::~AcceptListener() = default;  // State frees its timer before its listener

void AcceptListener::reset() { state_.reset(); }

void AcceptListener::enable() {
    if (!state_) return;
    state_->wanted = true;
    if (!state_->backing_off) evconnlistener_enable(state_->listener.get());
}

void AcceptListener::disable() {
    if (!state_) return;
    state_->wanted = false;
    evconnlistener_disable(state_->listener.get());
}

evconnlistener* AcceptListener::get() const { return state_ ? state_->listener.get() : nullptr; }

unsigned AcceptListener::failures() const { return state_ ? state_->failures : 0; }

}  // namespace ferry
