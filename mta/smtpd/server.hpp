// ferry-smtpd's listeners and sessions: binds smtp/submission/smtps, accepts, and owns every Session.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/auth/accounts.hpp"
#include "common/auth/auth.hpp"
#include "common/base/group_sync.hpp"
#include "common/program/config.hpp"
#include "common/event/commit_stage.hpp"
#include "common/event/worker_pool.hpp"
#include "mta/smtpd/message_check.hpp"
#include "common/event/net.hpp"
#include "common/event/event.hpp"
#include "common/event/session_set.hpp"
#include "common/base/result.hpp"
#include "common/event/tls.hpp"
#include "common/event/worker_pool.hpp"
#include "mta/smtpd/extensions.hpp"
#include "mta/smtpd/policy.hpp"
#include "mta/smtpd/qmgr_notify.hpp"
#include "mta/smtpd/spf_check.hpp"

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
    size_t max_received = 50;          // smtpd_max_received, 0: no limit (RFC 5321 6.3 loop detection)
    int max_errors = 20;               // smtpd_max_errors
    size_t max_sessions = 1000;        // smtpd_max_sessions
    size_t max_sessions_per_ip = 50;   // smtpd_max_sessions_per_ip, 0: no limit
    double lifetime = 3600;            // smtpd_session_lifetime, seconds, 0: no limit
    uint64_t min_data_rate = 500;      // smtpd_min_data_rate, bytes per second, 0: none
    double timeout = 300;              // smtpd_timeout, seconds
    double handshake_timeout = 30;     // tls_handshake_timeout, seconds
    std::string plaintext_auth;        // never | loopback | always
    std::vector<net::Network> relay_networks;  // smtpd_relay_networks: clients that may relay without AUTH
    int commit_threads = 8;            // smtpd_commit_threads, at least 1: queue file fsyncs side by side
    SpfPolicy spf_policy = SpfPolicy::record;  // smtpd_spf_policy
    double spf_timeout = 20;           // smtpd_spf_timeout, seconds: a check without a verdict by then is temperror
    bool dkim_verify = false;          // smtpd_dkim_verify: DkimCheck writes the Authentication-Results field, SPF included

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
    // Where sessions commit their messages (after start()): fsyncs off the loop, and each fsync of
    // queue/ on its own thread, beside the files' (spool::Writer::sync_linked), shared by a batch.
    CommitStage& commit_stage() { return *commit_; }
    GroupSync& queue_sync() { return *queue_sync_; }
    event_base* base() const { return base_; }
    // The DNS resolver of SPF and DKIM checks and DNS lists (dns_servers, dns_timeout); null when no check needs DNS.
    dns::Resolver* resolver() { return resolver_.get(); }
    // The checks every received message goes through, in order, before its commit (after start()).
    const std::vector<std::unique_ptr<MessageCheck>>& checks() const { return checks_; }

    // SIGTERM: stop accepting, let each session finish what it is doing (a message in DATA or in its
    // commit), then the commits of clients that went away, then `done`; what is still open after
    // shutdown_timeout is closed.
    void stop(std::function<void()> done);

    // The sessions; each releases itself from its on_close.
    SessionSet& sessions() { return sessions_; }

private:
    Result<void> listen_on(ListenerKind kind, const std::string& address);
    std::unique_ptr<ServedSession> make_session(SessionSet::Accepted& a);
    void refuse(const SessionSet::Accepted& a, SessionSet::Refusal why);
    // After the sessions: `stopped_` once no commit is pending (polled), or at the stop's deadline.
    void drain_commits();
    // spam_filter: the spam check and its worker threads (body rules cost CPU: never on the loop).
    Result<void> add_spam_check();
    // clamd_address: the virus check and its threads (each waits on clamd, within clamd_timeout).
    Result<void> add_clamd_check();
    // greylist, greylist_map: the greylisting check, last; its database work on check_pool_.
    Result<void> add_greylist_check();

    event_base* base_;
    const Config& config_;
    Settings settings_;
    std::optional<TlsContext> tls_;
    std::unique_ptr<AccountStore> accounts_;
    std::unique_ptr<Policy> policy_;
    std::unique_ptr<Authenticator> auth_;  // after accounts_: it uses the store, and goes first
    QmgrNotifier notifier_;
    std::unique_ptr<GroupSync> queue_sync_;  // before commit_: its threads wait on it
    std::unique_ptr<CommitStage> commit_;  // after notifier_: its completions notify
    std::unique_ptr<dns::Resolver> resolver_;
    std::unique_ptr<WorkerPool> spam_pool_;  // before checks_: the spam check submits to it
    std::unique_ptr<WorkerPool> clamd_pool_;  // the same for the clamd check
    std::unique_ptr<WorkerPool> check_pool_;             // the checks' work off the loop
    std::vector<std::unique_ptr<MessageCheck>> checks_;  // after resolver_ and check_pool_: they use them
    bool listening_ = false;
    std::function<void()> stopped_;
    double stop_deadline_ = 0;  // monotonic seconds
    EventPtr drain_ev_;
    SessionSet sessions_;  // last: sessions go before what they use
};

}  // namespace ferry::smtpd
