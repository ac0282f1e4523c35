// The IMAP server: bound listeners, accepting connections under session limits, and session ownership.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/auth/auth.hpp"
#include "common/base/fd.hpp"
#include "common/base/result.hpp"
#include "common/event/event.hpp"
#include "common/event/session_set.hpp"
#include "common/event/tls.hpp"
#include "common/program/config.hpp"
#include "common/program/reader_server.hpp"
#include "common/store/index.hpp"
#include "common/store/notify.hpp"
#include "imapd/learn.hpp"
#include "imapd/reader.hpp"

namespace ferry::imap {

class Session;

// What every session reads from ferry.conf, once.
struct Settings {
    Limits limits;
    double idle_timeout = 1800;       // imapd_idle_timeout (RFC 9051 section 5.4: at least 30 minutes)
    double handshake_timeout = 30;    // tls_handshake_timeout
    double command_deadline = 60;     // imapd_command_deadline: a command from first byte to end
    std::string mail_dir;
    std::string hostname;
    std::string plaintext_auth;       // never | loopback | always
};

// imapd_listen (imap), imapd_tls_listen (imaps, RFC 8314 port 993), imapd_max_sessions ...; sessions "I...".
inline constexpr ReaderNames kNames{"imapd", "imap", "imaps", "I"};

Settings settings_from_config(const Config& config);

class Server final : public ReaderServer {
public:
    Server(event_base* base, const Config& config, std::optional<TlsContext> tls, Authenticator& auth);
    ~Server() override;
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    event_base* base() const { return base_; }
    const Settings& settings() const { return settings_; }
    const std::optional<TlsContext>& tls() const { return tls_; }
    Authenticator& auth() { return auth_; }

    // Called by a session's on_close: destroyed from the loop, after it returns.
    void session_closed(Session* s);

    // The Junk learning hook: commands fed the messages moved into and out of Junk.
    Learner& learner() { return learner_; }
    // Change notification for the folders sessions IDLE on (one inotify fd for the process).
    store::FolderWatcher& watcher() { return watcher_; }
    // The one Index of a folder that the sessions selecting it share: `fresh` (just opened and
    // synced) becomes it unless a session holds one already, which is synced and returned instead.
    std::shared_ptr<store::Index> share_index(store::Index fresh);
    // The index a session holds of the folder at `maildir`, synced; null when none does (SELECT
    // then opens one: reading a whole index again is what sharing saves).
    std::shared_ptr<store::Index> held_index(const std::string& maildir);
    // Syncs a shared index once per turn of the loop: a change heard by 10,000 sessions on one
    // folder, or the commands of 50 busy sessions read in one turn, list its Maildir once.
    void sync_shared(store::Index& index);

private:
    ReaderSessions& sessions() override { return sessions_; }

    event_base* base_;
    Settings settings_;
    std::optional<TlsContext> tls_;
    Authenticator& auth_;
    // Before sessions_: sessions hold watches and indexes, so these outlive them.
    Learner learner_;
    store::FolderWatcher watcher_;
    struct Shared {
        std::weak_ptr<store::Index> index;
        bool synced = false;  // by sync_shared in this turn of the loop
    };
    std::unordered_map<std::string, Shared> indexes_;
    // Activated by a sync_shared: runs after the callbacks of the loop's turn and clears `synced`,
    // so that a command read in a later turn sees what other processes changed before it.
    EventPtr turn_end_;
    static void on_turn_end(evutil_socket_t, short, void* arg) noexcept;
    ReaderSessions sessions_;
};

}  // namespace ferry::imap
