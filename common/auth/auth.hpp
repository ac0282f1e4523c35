// Password checks off the event loop, with a delay after each failure and a per-address failure limit.
//
// Use (one Authenticator per process, created after drop_privileges and before the loop runs):
//   Authenticator auth(base, *account_store, config);
//   session->auth_ticket = auth.check(creds.authcid, creds.password, stream.peer(),
//                                     [session](const AuthResult& r) { ... });
//   stream.pause_input();   // until the callback; resume_input() there
// The callback always runs later from the loop, never inside check(). Dropping or resetting the
// AuthTicket (the session went away) cancels it: the callback will not run; a check whose crypt had
// not answered yet is taken off the worker queue and counts as a failure for its address; a check
// still waiting for its address's turn just leaves that queue.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <event2/event.h>

#include "common/auth/accounts.hpp"
#include "common/auth/scram.hpp"
#include "common/program/config.hpp"

namespace ferry {

struct AuthResult {
    enum Status {
        ok,        // password verified; `user` is the normalized address
        failed,    // unknown user or wrong password (indistinguishable to the client: 535 5.7.8 / -ERR)
        refused,   // too many failures from this client address: crypt was not run (535 5.7.8 / -ERR)
        tempfail,  // account database error, or too many checks queued (454 4.7.0 / -ERR [SYS/TEMP] / NO [UNAVAILABLE])
    };
    Status status = failed;
    std::string user;    // normalized address as looked up
    std::string detail;  // for the log line, never contains the password
};

struct AuthSettings {
    int workers = 2;                                   // auth_workers (at least 1 thread)
    std::chrono::milliseconds failure_delay{2000};     // auth_failure_delay
    int max_failures = 10;                             // auth_max_failures; 0 = no limit
    std::chrono::seconds failure_window{600};          // auth_failure_window
    int max_queued = 64;                               // auth_max_queued: checks per address waiting their turn
    static AuthSettings from_config(const Config& config);
};

class Authenticator;
class Stream;
struct CryptJob;

// Handle on one pending check. Destroying it (or reset()) cancels the callback; it must not
// outlive its Authenticator.
class AuthTicket {
public:
    AuthTicket() = default;
    AuthTicket(AuthTicket&& o) noexcept;
    AuthTicket& operator=(AuthTicket&& o) noexcept;
    AuthTicket(const AuthTicket&) = delete;
    AuthTicket& operator=(const AuthTicket&) = delete;
    ~AuthTicket() { reset(); }
    void reset();
    // True while the callback is still to come.
    bool pending() const;

private:
    friend class Authenticator;
    AuthTicket(Authenticator* auth, uint64_t id) : auth_(auth), id_(id) {}
    Authenticator* auth_ = nullptr;
    uint64_t id_ = 0;
};

class Authenticator {
public:
    using Callback = std::function<void(const AuthResult&)>;

    // Starts the worker threads (with all signals blocked). `store` is used from the loop thread
    // only; crypt(3) runs on the workers.
    Authenticator(event_base* base, AccountStore& store, const AuthSettings& settings);
    Authenticator(event_base* base, AccountStore& store, const Config& config)
        : Authenticator(base, store, AuthSettings::from_config(config)) {}
    // Stops and joins the workers; pending callbacks are dropped.
    ~Authenticator();
    Authenticator(const Authenticator&) = delete;
    Authenticator& operator=(const Authenticator&) = delete;

    // Verifies `password` for account `user` (normalized with normalize_address). The account lookup
    // happens here on the loop; the hash comparison on a worker (an unknown user is compared against
    // a dummy hash, so timing does not tell). A failure's callback comes auth_failure_delay late and
    // counts against `client_ip`. Once that address's failures within auth_failure_window reach
    // auth_max_failures, further attempts get `refused` (also after the delay) without running crypt,
    // until old failures leave the window. An address's checks in crypt count against that allowance
    // too: beyond it a check waits (up to auth_max_queued per address, FIFO) and starts as earlier
    // ones finish, so parallel guesses cannot outrun the limit while parallel correct logins all
    // succeed. Waiting checks are refused once the failures reach the limit. A success does not clear
    // the count. At most 64 * auth_workers checks wait (for crypt or their turn) at once; beyond that,
    // or beyond auth_max_queued for one address, the answer is `tempfail` (at once).
    [[nodiscard]] AuthTicket check(std::string user, std::string password, std::string client_ip, Callback cb);

    // SCRAM-SHA-256 (common/auth/scram.hpp): the exchange's proof is checked against the account's
    // stored keys on a worker, with the limits, queueing and failure delay of check(). An unknown
    // user, or an account whose password was set before SCRAM keys were kept, fails the same way.
    [[nodiscard]] AuthTicket check_scram(std::string user, std::shared_ptr<const sasl::ScramServer> exchange,
                                         std::string client_ip, Callback cb);
    // The keys for the server-first message: the account's, or sasl::scram_dummy() of the name
    // (unknown user, no SCRAM keys), so that a client cannot tell; an error when the lookup fails.
    Result<sasl::ScramKeys> scram_keys(const std::string& user);

    // Failures currently counted against an address (for tests and logs).
    int failures(const std::string& client_ip);
    // Checks queued for or running crypt, including abandoned ones a worker has begun, plus checks
    // waiting for their address's turn (for tests).
    size_t waiting() const;

    struct Impl;

private:
    friend class AuthTicket;
    void cancel(uint64_t id);
    bool is_pending(uint64_t id) const;
    AuthTicket submit(std::string user, std::shared_ptr<CryptJob> job, std::string client_ip, Callback cb);
    std::unique_ptr<Impl> impl_;
};

// The start of a login check in a session on `stream` (ferry-imapd, ferry-popd): input paused and
// the idle timeout off until `cb` (the client waits on us, and on the failure delay: not
// idleness); `cb` restores both. With `scram` set, that SCRAM-SHA-256 exchange is checked
// (Authenticator::check_scram) and `password` is unused.
[[nodiscard]] AuthTicket start_login_check(Authenticator& auth, Stream& stream, std::string user, std::string password,
                                           std::shared_ptr<const sasl::ScramServer> scram, Authenticator::Callback cb);

// The login check of a mail reader's session (ferry-imapd, ferry-popd), in one place for both: a
// password, or with `scram` a SCRAM-SHA-256 exchange, checked through start_login_check; the answer
// goes to the callback given here, and a check still running is cancelled with the session.
class LoginCheck {
public:
    LoginCheck(Authenticator& auth, Stream& stream, Authenticator::Callback on_result)
        : auth_(auth), stream_(stream), on_result_(std::move(on_result)) {}
    void check_password(std::string user, std::string password, std::shared_ptr<const sasl::ScramServer> scram = {});
    void reset() { ticket_.reset(); }

private:
    Authenticator& auth_;
    Stream& stream_;
    Authenticator::Callback on_result_;
    AuthTicket ticket_;
};

// plaintext_auth policy: may a PLAIN/LOGIN/USER+PASS login be offered on this connection?
// always: yes; loopback: over TLS or from a loopback peer; never: only over TLS.
bool plaintext_allowed(const Config& config, bool tls_active, bool peer_is_loopback);
bool plaintext_allowed(std::string_view policy, bool tls_active, bool peer_is_loopback);

}  // namespace ferry
