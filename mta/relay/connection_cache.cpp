// Idle SMTP connections kept per destination domain for relay_connection_reuse_time, for the next message there.
#include "mta/relay/connection_cache.hpp"

#include "common/base/log.hpp"

namespace ferry::relay {

ConnectionCache::ConnectionCache(event_base* base, double reuse_time, size_t max_messages)
    : base_(base), reuse_time_(reuse_time), max_messages_(max_messages) {}

ConnectionCache::~ConnectionCache() = default;

std::unique_ptr<SmtpConnection> ConnectionCache::take(const std::string& domain) {
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        if (it->second->domain != domain || !it->first->idle()) continue;
        auto conn = std::move(it->second->conn);
        idle_.erase(it);
        return conn;
    }
    return nullptr;
}

void ConnectionCache::put(const std::string& domain, std::unique_ptr<SmtpConnection> c) {
    if (reuse_time_ <= 0 || !c->idle() || c->messages() >= max_messages_) return retire(std::move(c));
    c->set_owner(this, "cache");
    auto idle = std::make_unique<Idle>(Idle{this, domain, std::move(c), nullptr});
    SmtpConnection* key = idle->conn.get();
    idle->timer.reset(evtimer_new(base_, on_expired, idle.get()));
    timeval tv = to_timeval(reuse_time_);
    event_add(idle->timer.get(), &tv);
    idle_.emplace(key, std::move(idle));
}

void ConnectionCache::retire(std::unique_ptr<SmtpConnection> c) {
    if (!c) return;
    c->set_owner(this, "cache");
    SmtpConnection* key = c.get();
    c->quit();
    closing_.emplace(key, std::move(c));
}

void ConnectionCache::on_expired(evutil_socket_t, short, void* arg) noexcept {
    auto* idle = static_cast<Idle*>(arg);
    ConnectionCache* self = idle->cache;
    auto it = self->idle_.find(idle->conn.get());
    if (it == self->idle_.end()) return;
    auto conn = std::move(it->second->conn);
    self->idle_.erase(it);  // frees this timer, from inside its own callback: nothing after uses it
    self->retire(std::move(conn));
}

// A connection of ours ended (the peer closed an idle one, or our QUIT was done).
void ConnectionCache::smtp_failed(SmtpConnection& c, int, const std::string&, const std::string& why) {
    if (auto it = idle_.find(&c); it != idle_.end()) {
        log::debug("%s: idle connection ended: %s", c.peer_name().c_str(), why.c_str());
        idle_.erase(it);
        return;
    }
    closing_.erase(&c);
}

}  // namespace ferry::relay
