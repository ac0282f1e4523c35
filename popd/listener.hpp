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
#include "common/base/result.hpp"
#include "common/event/tls.hpp"
#include "popd/maildrop.hpp"
#include "popd/session.hpp"

namespace ferry::pop3 {

struct BoundListener {
    Fd fd;
    bool implicit_tls = false;  // pop3s (RFC 8314 port 995)
};

// Binds popd_listen (pop3) and popd_tls_listen (pop3s) and logs "listening on pop3[s] ADDR" for each.
// pop3s without tls_cert_file is a configuration error.
Result<std::vector<BoundListener>> bind_listeners(const Config& config, bool have_tls);

Settings settings_from_config(const Config& config);
// Values the key table cannot check by type: popd_expire is empty, "never" or a number of days.
Result<void> check_config(const Config& config);

class Server {
public:
    Server(event_base* base, const Config& config, std::optional<TlsContext> tls, Authenticator& auth);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Starts accepting on the listeners (after privileges are dropped).
    void serve(std::vector<BoundListener> listeners);
    // SIGTERM: stop accepting, end each session without UPDATE, then `done` (at the latest after
    // shutdown_timeout).
    void stop(std::function<void()> done);

    event_base* base() const { return base_; }
    const Settings& settings() const { return settings_; }
    const std::optional<TlsContext>& tls() const { return tls_; }
    Authenticator& auth() { return auth_; }
    LockSet& locks() { return locks_; }

    // LOGIN-DELAY (RFC 2449 section 6.5): how long `user` must still wait; record_login starts the wait.
    std::chrono::seconds login_wait(const std::string& user) const;
    void record_login(const std::string& user);

    // Called by a session's on_close: destroyed from the loop, after it returns.
    void session_closed(Session* s) { sessions_.release(s); }

private:
    std::unique_ptr<ServedSession> make_session(SessionSet::Accepted& a);
    void refuse(const SessionSet::Accepted& a, SessionSet::Refusal why);

    event_base* base_;
    Settings settings_;
    std::optional<TlsContext> tls_;
    Authenticator& auth_;
    double shutdown_timeout_;
    LockSet locks_;
    std::map<std::string, std::chrono::steady_clock::time_point> last_login_;
    SessionSet sessions_;  // last: each session's Maildrop unlocks in locks_ as it goes
};

}  // namespace ferry::pop3
