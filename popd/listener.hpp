// The POP3 server: bound listeners, accepting connections under session limits, and session ownership.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/auth/auth.hpp"
#include "common/program/config.hpp"
#include "common/event/event.hpp"
#include "common/base/fd.hpp"
#include "common/event/session_set.hpp"
#include "common/event/worker_pool.hpp"
#include "common/base/result.hpp"
#include "common/event/tls.hpp"
#include "common/program/reader_server.hpp"
#include "popd/maildrop.hpp"
#include "popd/session.hpp"

namespace ferry::pop3 {

// popd_listen (pop3), popd_tls_listen (pop3s, RFC 8314 port 995), popd_max_sessions ...; sessions "P...".
inline constexpr ReaderNames kNames{"popd", "pop3", "pop3s", "P"};

Settings settings_from_config(const Config& config);
// Values the key table cannot check by type: popd_expire is empty, "never" or a number of days.
Result<void> check_config(const Config& config);

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
    LockSet& locks() { return locks_; }
    // popd_workers threads for the disk work of sessions: maildrop scans, message reads, UPDATE.
    WorkerPool& pool() { return pool_; }

    // LOGIN-DELAY (RFC 2449 section 6.5): how long `user` must still wait; record_login starts the wait.
    std::chrono::seconds login_wait(const std::string& user) const;
    void record_login(const std::string& user);

    // Called by a session's on_close: destroyed from the loop, after it returns.
    void session_closed(Session* s) { sessions_.release(s); }

private:
    ReaderSessions& sessions() override { return sessions_; }

    event_base* base_;
    Settings settings_;
    std::optional<TlsContext> tls_;
    Authenticator& auth_;
    LockSet locks_;
    WorkerPool pool_;  // after locks_: a job dropped when the pool stops may still unlock a Maildrop
    std::map<std::string, std::chrono::steady_clock::time_point> last_login_;
    ReaderSessions sessions_;  // last: each session's Maildrop unlocks in locks_ as it goes
};

}  // namespace ferry::pop3
