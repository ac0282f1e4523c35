// An LMTP server on a Unix socket: binds it, accepts up to a limit, gives each session its backend and owns the sessions.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "common/base/result.hpp"
#include "common/event/session_set.hpp"
#include "common/smtp/lmtp_server.hpp"

namespace ferry::smtp {

// ferry-mda (mda_socket), ferry-relay (relay_socket) and ferry-qmgr's local submission
// (submit_socket) differ only in these and in their backends.
struct LmtpListenerOptions {
    std::string path;          // the socket
    mode_t mode = 0660;        // of the socket file
    size_t max_sessions = 100;
    std::string id_prefix;     // of session ids: "L", "R", "S"
    std::string name = "lmtp"; // in log lines: "listening on lmtp <path>"
    std::string limit_key;     // the key named when a connection is refused for the limit
};

class LmtpListener final : public LmtpSession::Owner {
public:
    // Makes the backend of a new session (the accepted connection's fd is still in `a`); may panic
    // when the caller's workers are not there yet, as a daemon's wiring mistake.
    using MakeBackend = std::function<std::unique_ptr<LmtpBackend>(SessionSet::Accepted& a)>;

    LmtpListener(event_base* base, LmtpListenerOptions options, const LmtpSessionSettings& settings,
                 MakeBackend make);
    ~LmtpListener() override;

    // Binds the socket (replacing a stale one), starts accepting, and logs "listening on <name> <path>".
    Result<void> listen();
    void session_closed(LmtpSession* session) override;
    size_t sessions() const { return sessions_.size(); }

private:
    struct Held;
    std::unique_ptr<ServedSession> make_session(SessionSet::Accepted& a);

    event_base* base_;
    LmtpListenerOptions options_;
    const LmtpSessionSettings& settings_;
    MakeBackend make_;
    std::unordered_map<LmtpSession*, ServedSession*> held_;  // each session's holder in sessions_
    SessionSet sessions_;  // last: sessions go before what they use
};

}  // namespace ferry::smtp
