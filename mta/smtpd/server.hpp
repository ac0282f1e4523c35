// ferry-smtpd's listeners and sessions: binds smtp/submission/smtps, accepts, and owns every Session.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/auth/accounts.hpp"
#include "common/auth/auth.hpp"
#include "common/program/config.hpp"
#include "common/event/event.hpp"
#include "common/event/listener.hpp"
#include "common/base/result.hpp"
#include "common/event/tls.hpp"
#include "mta/smtpd/extensions.hpp"
#include "mta/smtpd/policy.hpp"
#include "mta/smtpd/qmgr_notify.hpp"

namespace ferry::smtpd {

class Session;

// The configuration a session reads, resolved once at start.
struct Settings {
    std::string hostname;
    std::string spool_dir;
    size_t max_command_length = 4096;  // smtpd_max_command_length, never below RFC 5321's 512
    size_t max_line_length = 65536;    // smtpd_max_line_length, one DATA line with CRLF
    size_t max_header_size = 102400;   // smtpd_max_header_size
    size_t max_recipients = 100;       // smtpd_max_recipients
    int max_errors = 20;               // smtpd_max_errors
    size_t max_sessions = 1000;        // smtpd_max_sessions
    double timeout = 300;              // smtpd_timeout, seconds
    double handshake_timeout = 30;     // tls_handshake_timeout, seconds
    std::string plaintext_auth;        // never | loopback | always

    static Settings from(const Config& config);
};

// Start-up checks of the listener and TLS keys together (exit 78 when they fail): an smtps
// listener needs tls_cert_file. `have_tls`: tls_from_config found a certificate.
Result<void> check_listeners(const Config& config, bool have_tls);

class Server {
public:
    // `tls`: from tls_from_config; nullopt means no STARTTLS and no smtps listener.
    Server(event_base* base, const Config& config, std::optional<TlsContext> tls);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds every configured listener and logs "listening on <kind> <address>" for each.
    Result<void> listen();
    // After privileges are dropped: the spool layout, the account database and the password
    // checker (its worker threads), then accepting.
    Result<void> start();

    const Settings& settings() const { return settings_; }
    const Config& config() const { return config_; }
    Policy& policy() { return *policy_; }
    QmgrNotifier& notifier() { return notifier_; }
    const std::optional<TlsContext>& tls() const { return tls_; }
    Authenticator& auth() { return *auth_; }
    event_base* base() const { return base_; }

    // Called by a session from its on_close: destroys it.
    void drop(Session* session);

private:
    struct Listening {
        Server* server;
        ListenerKind kind;
        AcceptListener listener;
    };
    Result<void> listen_on(ListenerKind kind, const std::string& address);
    static void on_accept(evconnlistener* l, evutil_socket_t fd, sockaddr* sa, int len, void* arg);
    void accept(ListenerKind kind, evutil_socket_t fd, const sockaddr* sa);

    event_base* base_;
    const Config& config_;
    Settings settings_;
    std::optional<TlsContext> tls_;
    std::unique_ptr<AccountStore> accounts_;
    std::unique_ptr<Policy> policy_;
    std::unique_ptr<Authenticator> auth_;  // after accounts_: it uses the store, and goes first
    QmgrNotifier notifier_;
    std::vector<std::unique_ptr<Listening>> listeners_;
    std::unordered_map<Session*, std::unique_ptr<Session>> sessions_;
};

}  // namespace ferry::smtpd
