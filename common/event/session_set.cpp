// SessionSet: the server skeleton every daemon shares: accepts on its listeners under a total and a
// per-address session limit, owns the sessions, ends them at their lifetime, reaps them, stops gracefully.
#include "common/event/session_set.hpp"

#include <sys/socket.h>

#include <cstdio>
#include <ctime>
#include <optional>

#include "common/base/log.hpp"
#include "common/event/net.hpp"

namespace ferry {

struct SessionSet::Entry {
    SessionSet* set = nullptr;
    std::unique_ptr<ServedSession> session;
    std::string address;
    EventPtr lifetime;  // declared last, so freed before the session it points to
};

struct SessionSet::Bound {
    SessionSet* set = nullptr;
    int tag = 0;
    AcceptListener listener;
};

SessionSet::SessionSet(event_base* base, SessionLimits limits, std::string id_prefix, Factory make, Refuse refuse)
    : base_(base), limits_(limits), id_prefix_(std::move(id_prefix)), make_(std::move(make)),
      refuse_(std::move(refuse)) {
    reap_ev_.reset(evtimer_new(base_, on_reap, this));
    grace_ev_.reset(evtimer_new(base_, on_grace, this));
    if (!reap_ev_ || !grace_ev_) log::panic("SessionSet: evtimer_new failed");
}

SessionSet::~SessionSet() {
    listeners_.clear();
    sessions_.clear();
    dead_.clear();
}

Result<void> SessionSet::listen(Fd fd, std::string name, int tag) {
    auto b = std::make_unique<Bound>();
    b->set = this;
    b->tag = tag;
    auto l = AcceptListener::open(base_, std::move(fd), std::move(name), on_accept, b.get());
    if (!l) return l.error();
    b->listener = std::move(l.value());
    b->listener.disable();  // until enable()
    listeners_.push_back(std::move(b));
    return {};
}

void SessionSet::enable() {
    if (stopping_) return;
    for (auto& b : listeners_) b->listener.enable();
}

void SessionSet::disable() {
    for (auto& b : listeners_) b->listener.disable();
}

size_t SessionSet::count(const std::string& address) const {
    auto it = per_address_.find(address);
    return it == per_address_.end() ? 0 : it->second;
}

void SessionSet::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int, void* arg) noexcept {
    auto* b = static_cast<Bound*>(arg);
    b->set->accept(Fd(fd), sa, b->tag);
}

std::string SessionSet::next_id() {
    // Start time and a counter: unique across restarts, short enough for every log line.
    static const long start = static_cast<long>(std::time(nullptr));
    char buf[48];
    snprintf(buf, sizeof buf, "%s%lX%04llX", id_prefix_.c_str(), start, ++counter_);
    return buf;
}

void SessionSet::accept(Fd fd, const sockaddr* sa, int tag) {
    Accepted a;
    a.fd = std::move(fd);
    a.tag = tag;
    bool tcp = sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
    if (tcp) a.address = net::format_address(sa, false);
    std::optional<Refusal> why;
    if (limits_.max_sessions > 0 && sessions_.size() >= limits_.max_sessions) why = Refusal::total;
    else if (tcp && limits_.max_per_address > 0 && count(a.address) >= limits_.max_per_address)
        why = Refusal::per_address;
    if (why || stopping_) {
        refuse_(a, why.value_or(Refusal::total));
        return;  // a.fd closes here
    }
    a.id = next_id();
    auto entry = std::make_unique<Entry>();
    entry->set = this;
    entry->address = a.address;
    ServedSession* key = nullptr;
    if (limits_.lifetime > 0) {
        entry->lifetime.reset(evtimer_new(base_, on_lifetime, entry.get()));
        timeval tv = to_timeval(limits_.lifetime);
        if (entry->lifetime) evtimer_add(entry->lifetime.get(), &tv);
    }
    if (tcp) ++per_address_[a.address];
    entry->session = make_(a);
    key = entry->session.get();
    if (!key) {  // the factory could not make one; the connection is closed
        if (tcp && --per_address_[a.address] == 0) per_address_.erase(a.address);
        return;
    }
    sessions_.emplace(key, std::move(entry));
}

void SessionSet::on_lifetime(evutil_socket_t, short, void* arg) noexcept {
    auto* e = static_cast<Entry*>(arg);
    e->session->on_lifetime_expired();
}

void SessionSet::release(ServedSession* session) {
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return;
    auto entry = std::move(it->second);
    sessions_.erase(it);
    if (!entry->address.empty()) {
        auto c = per_address_.find(entry->address);
        if (c != per_address_.end() && --c->second == 0) per_address_.erase(c);
    }
    entry->lifetime.reset();
    dead_.push_back(std::move(entry));
    timeval now{0, 0};
    evtimer_add(reap_ev_.get(), &now);
}

void SessionSet::on_reap(evutil_socket_t, short, void* arg) noexcept {
    auto* self = static_cast<SessionSet*>(arg);
    auto dead = std::move(self->dead_);
    self->dead_.clear();
    dead.clear();  // sessions released while these are destroyed go to the next reap
    self->check_stopped();
}

void SessionSet::stop(double grace, std::function<void()> done) {
    stopping_ = true;
    stopped_ = std::move(done);
    disable();
    std::vector<ServedSession*> live;
    for (auto& [s, e] : sessions_) live.push_back(s);
    for (ServedSession* s : live)
        if (sessions_.count(s)) s->on_stop();
    timeval tv = to_timeval(grace);
    evtimer_add(grace_ev_.get(), &tv);
    timeval now{0, 0};
    evtimer_add(reap_ev_.get(), &now);  // done follows from the loop even when there was no session
}

void SessionSet::check_stopped() {
    if (stopping_ && stopped_ && sessions_.empty() && dead_.empty()) finish_stop();
}

void SessionSet::on_grace(evutil_socket_t, short, void* arg) noexcept {
    auto* self = static_cast<SessionSet*>(arg);
    if (!self->sessions_.empty())
        log::info("stopping: %zu sessions still open after the grace period; closing them", self->sessions_.size());
    self->sessions_.clear();
    self->per_address_.clear();
    self->dead_.clear();
    self->finish_stop();
}

void SessionSet::finish_stop() {
    evtimer_del(grace_ev_.get());
    auto done = std::move(stopped_);
    stopped_ = nullptr;
    if (done) done();
}

}  // namespace ferry
