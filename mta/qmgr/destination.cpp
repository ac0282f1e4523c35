// Per-destination scheduling state of qmgr: transactions in flight, start rate, and back-off of a destination that is down.
#include "mta/qmgr/destination.hpp"

#include <algorithm>

#include "mta/qmgr/retry.hpp"

namespace ferry::qmgr {

Destinations::Destinations(size_t concurrency, int64_t rate_delay, const std::vector<std::chrono::seconds>* schedule)
    : concurrency_(std::max<size_t>(1, concurrency)), rate_delay_(std::max<int64_t>(0, rate_delay)), schedule_(schedule) {}

Destinations::Gate Destinations::gate(const std::string& dest, int64_t now, int64_t& until) const {
    auto it = table_.find(dest);
    if (it == table_.end()) return Gate::open;
    const State& s = it->second;
    if (s.dead_until > now) {
        until = s.dead_until;
        return Gate::dead;
    }
    // After failures one transaction probes the destination; the others wait for its outcome.
    size_t limit = s.failures > 0 ? 1 : concurrency_;
    if (s.in_flight >= limit) return Gate::busy;
    // Times are whole seconds: a start in the same second as the last one plus the delay could come
    // up to a second early, so the next start waits one second more.
    if (rate_delay_ > 0 && s.last_start >= 0 && s.last_start + rate_delay_ >= now) {
        until = s.last_start + rate_delay_ + 1;
        return Gate::rate;
    }
    return Gate::open;
}

void Destinations::started(const std::string& dest, int64_t now) {
    State& s = table_[dest];
    ++s.in_flight;
    s.last_start = now;
}

void Destinations::cancelled(const std::string& dest) {
    auto it = table_.find(dest);
    if (it != table_.end() && it->second.in_flight > 0) --it->second.in_flight;
}

bool Destinations::finished(const std::string& dest, int64_t now, bool down) {
    auto it = table_.find(dest);
    if (it == table_.end()) return false;
    State& s = it->second;
    if (s.in_flight > 0) --s.in_flight;
    bool newly_dead = false;
    if (down) {
        ++s.failures;
        int64_t until = now + retry_delay(*schedule_, s.failures).count();
        newly_dead = s.dead_until <= now;
        s.dead_until = std::max(s.dead_until, until);
        if (newly_dead) s.noticed = false;
    } else {
        s.failures = 0;
        s.dead_until = 0;
    }
    forget_if_idle(dest, now);
    return newly_dead;
}

bool Destinations::first_hold_notice(const std::string& dest) {
    auto it = table_.find(dest);
    if (it == table_.end() || it->second.noticed) return false;
    it->second.noticed = true;
    return true;
}

size_t Destinations::in_flight(const std::string& dest) const {
    auto it = table_.find(dest);
    return it == table_.end() ? 0 : it->second.in_flight;
}

size_t Destinations::free_slots(const std::string& dest) const {
    auto it = table_.find(dest);
    if (it == table_.end()) return concurrency_;
    size_t limit = it->second.failures > 0 ? 1 : concurrency_;
    return it->second.in_flight >= limit ? 0 : limit - it->second.in_flight;
}

// An entry with nothing to remember is dropped, so the table stays as small as the busy destinations.
void Destinations::forget_if_idle(const std::string& dest, int64_t now) {
    auto it = table_.find(dest);
    const State& s = it->second;
    if (s.in_flight == 0 && s.failures == 0 && (rate_delay_ == 0 || s.last_start + rate_delay_ < now))
        table_.erase(it);
}

bool destination_down(const smtp::Reply& reply) {
    if (reply.code < 400 || reply.code >= 500) return false;
    if (reply.text.find(" said: ") != std::string::npos) return false;
    if (reply.enhanced.rfind("4.4.", 0) == 0) return true;
    return reply.text.find(" 4.4.") != std::string::npos && reply.text.find(" 4.4.") < 8;
}

namespace {

// ferry-relay names a peer "host NAME[ADDRESS]" with ":PORT" when not 25; the log shows NAME[ADDRESS]:PORT.
std::string peer_of(std::string name) {
    if (name.rfind("host ", 0) == 0) name.erase(0, 5);
    if (name.empty() || name.find(' ') != std::string::npos) return "ferry-relay";
    return name;
}

}  // namespace

std::string relay_host_of(const std::string& text) {
    if (auto p = text.find("delivered to "); p != std::string::npos) {
        p += 13;
        auto e = text.find(": ", p);
        if (e != std::string::npos) return peer_of(text.substr(p, e - p));
    }
    if (auto s = text.find(" said: "); s != std::string::npos) {
        auto b = text.rfind(">: ", s);
        size_t start = b == std::string::npos ? 0 : b + 3;
        if (start < s) return peer_of(text.substr(start, s - start));
    }
    return "ferry-relay";
}

}  // namespace ferry::qmgr
