// The IMAP server: bound listeners, accepting connections under session limits, and session ownership.
#include "imapd/server.hpp"

#include <algorithm>

#include "common/base/log.hpp"
#include "common/program/daemon.hpp"
#include "imapd/session.hpp"

namespace ferry::imap {

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

Server::Server(event_base* base, const Config& config, std::optional<TlsContext> tls, Authenticator& auth)
    : base_(base), settings_(settings_from_config(config)), tls_(std::move(tls)), auth_(auth),
      learner_(base, learn_settings(config)), watcher_(base), turn_end_(event_new(base, -1, 0, on_turn_end, this)),
      sessions_(base, config, kNames, start_sessions<Session>(*this),
                [](const char* text) { return std::string("* BYE [UNAVAILABLE] ") + text + "\r\n"; }) {}

Server::~Server() = default;

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
    sync_shared(*held);
    return held;
}

void Server::sync_shared(store::Index& index) {
    auto it = indexes_.find(index.maildir());
    if (it != indexes_.end() && it->second.synced) return;
    if (auto r = index.sync(); !r) log::warnx("sync %s: %s", index.maildir().c_str(), r.error().what().c_str());
    if (it == indexes_.end() || !turn_end_) return;
    it->second.synced = true;
    event_active(turn_end_.get(), 0, 0);
}

void Server::on_turn_end(evutil_socket_t, short, void* arg) noexcept {
    for (auto& [maildir, shared] : static_cast<Server*>(arg)->indexes_) shared.synced = false;
}

}  // namespace ferry::imap
