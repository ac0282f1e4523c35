// The IMAP server: bound listeners, accepting connections under session limits, and session ownership.
#include "imapd/server.hpp"

#include <sys/socket.h>

#include <algorithm>

#include "common/base/log.hpp"
#include "common/event/net.hpp"
#include "common/program/daemon.hpp"
#include "imapd/session.hpp"

namespace ferry::imap {

Result<std::vector<BoundListener>> bind_listeners(const Config& config, bool have_tls) {
    std::vector<BoundListener> out;
    auto bind_all = [&](const char* key, bool implicit_tls) -> Result<void> {
        for (const auto& addr : config.list(key)) {
            if (implicit_tls && !have_tls)
                return make_error(0, "", std::string(key) + " is set but tls_cert_file is not");
            auto fd = net::listen_tcp(addr);
            if (!fd) return fd.error();
            log::info("listening on %s %s", implicit_tls ? "imaps" : "imap", net::local_address(fd->get()).c_str());
            out.push_back(BoundListener{std::move(fd.value()), implicit_tls});
        }
        return {};
    };
    if (auto r = bind_all("imapd_listen", false); !r) return r.error();
    if (auto r = bind_all("imapd_tls_listen", true); !r) return r.error();
    if (out.empty()) return make_error(0, "", "no listeners: imapd_listen and imapd_tls_listen are both empty");
    return out;
}

Settings settings_from_config(const Config& config) {
    Settings s;
    s.idle_timeout = static_cast<double>(config.duration("imapd_idle_timeout").count());
    s.handshake_timeout = static_cast<double>(config.duration("tls_handshake_timeout").count());
    s.command_deadline = static_cast<double>(config.duration("imapd_command_deadline").count());
    s.mail_dir = config.str("mail_dir");
    s.hostname = my_hostname(config);
    s.plaintext_auth = config.str("plaintext_auth");
    return s;
}

namespace {

SessionLimits session_limits(const Config& config) {
    SessionLimits l;
    l.max_sessions = static_cast<size_t>(std::max<int64_t>(1, config.integer("imapd_max_sessions")));
    l.max_per_address = static_cast<size_t>(std::max<int64_t>(0, config.integer("imapd_max_sessions_per_ip")));
    l.lifetime = static_cast<double>(config.duration("imapd_session_lifetime").count());
    return l;
}

enum Tag { kImap = 0, kImaps = 1 };

}  // namespace

Server::Server(event_base* base, const Config& config, std::optional<TlsContext> tls, Authenticator& auth)
    : base_(base), settings_(settings_from_config(config)), tls_(std::move(tls)), auth_(auth),
      shutdown_timeout_(static_cast<double>(config.duration("shutdown_timeout").count())), watcher_(base),
      sessions_(base, session_limits(config), "I", [this](SessionSet::Accepted& a) { return make_session(a); },
                [this](const SessionSet::Accepted& a, SessionSet::Refusal why) { refuse(a, why); }) {}

Server::~Server() = default;

void Server::serve(std::vector<BoundListener> listeners) {
    for (auto& l : listeners) {
        std::string name = std::string(l.implicit_tls ? "imaps " : "imap ") + net::local_address(l.fd.get());
        if (auto r = sessions_.listen(std::move(l.fd), name, l.implicit_tls ? kImaps : kImap); !r)
            log::panic("%s", r.error().what().c_str());
    }
    sessions_.enable();
}

void Server::stop(std::function<void()> done) { sessions_.stop(shutdown_timeout_, std::move(done)); }

void Server::session_closed(Session* s) { sessions_.release(s); }

// Sharing keeps the memory of 10,000 sessions on one INBOX at one copy of its messages.
std::shared_ptr<store::Index> Server::share_index(store::Index fresh) {
    std::string key = fresh.maildir();
    if (auto held = held_index(key)) return held;
    // Entries whose index is gone are swept, so the map does not grow with every folder ever selected.
    std::erase_if(indexes_, [](const auto& kv) { return kv.second.index.expired(); });
    auto index = std::make_shared<store::Index>(std::move(fresh));
    indexes_[key] = Shared{index, {}};
    return index;
}

std::shared_ptr<store::Index> Server::held_index(const std::string& maildir) {
    auto it = indexes_.find(maildir);
    if (it == indexes_.end()) return nullptr;
    auto held = it->second.index.lock();
    if (!held) return nullptr;
    if (auto r = held->sync(); !r) log::warnx("sync %s: %s", maildir.c_str(), r.error().what().c_str());
    return held;
}

void Server::sync_shared(store::Index& index) {
    timeval now{};
    event_base_gettimeofday_cached(base_, &now);
    auto it = indexes_.find(index.maildir());
    if (it != indexes_.end() && it->second.synced.tv_sec == now.tv_sec && it->second.synced.tv_usec == now.tv_usec) return;
    if (auto r = index.sync(); !r) log::warnx("sync %s: %s", index.maildir().c_str(), r.error().what().c_str());
    if (it != indexes_.end()) it->second.synced = now;
}

std::unique_ptr<ServedSession> Server::make_session(SessionSet::Accepted& a) {
    auto session = std::make_unique<Session>(*this, std::move(a.fd), a.tag == kImaps, a.id);
    session->start();
    return session;
}

void Server::refuse(const SessionSet::Accepted& a, SessionSet::Refusal why) {
    const char* text = why == SessionSet::Refusal::per_address ? "too many connections from your address"
                                                                : "too many connections";
    const char* key = why == SessionSet::Refusal::per_address ? "imapd_max_sessions_per_ip" : "imapd_max_sessions";
    log::warnx("refusing connection from %s: %s (%s)", a.address.c_str(), text, key);
    // An imaps client expects a TLS handshake, not a line; it just sees the close.
    if (a.tag == kImaps) return;
    std::string line = std::string("* BYE [UNAVAILABLE] ") + text + "\r\n";
    (void)!::send(a.fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace ferry::imap
