// The skeleton the mail readers (ferry-popd, ferry-imapd) share: a plain and an implicit-TLS listener
// set, the session set under their limits, refusals, and the start-up from ferry.conf to the loop.
//
// Use (main.cpp):
//   ReaderStart start = start_reader(config, kDeclaration, kNames);  // TLS, directories, bind, drop privileges
//   ... accounts, Authenticator on start.base.get() ...
//   return run_reader(start, std::make_unique<Server>(start.base.get(), config, std::move(start.tls), auth));
// and the Server keeps a ReaderSessions that makes its sessions.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"
#include "common/event/event.hpp"
#include "common/event/session_set.hpp"
#include "common/event/tls.hpp"
#include "common/program/config.hpp"
#include "common/program/declaration.hpp"

namespace ferry {

// How a reader names itself in ferry.conf keys and log lines.
struct ReaderNames {
    const char* prefix;        // "popd": popd_listen, popd_tls_listen, popd_max_sessions[_per_ip], popd_session_lifetime
    const char* plain;         // "pop3": "listening on pop3 ADDR"
    const char* implicit_tls;  // "pop3s" (RFC 8314)
    const char* id_prefix;     // "P": the first letter of each session ID
};

struct BoundListener {
    Fd fd;
    bool implicit_tls = false;
};

// Binds <prefix>_listen and <prefix>_tls_listen, logging "listening on <plain|implicit_tls> ADDR" for each.
// An implicit-TLS listener without tls_cert_file (`have_tls` false) is a configuration error.
Result<std::vector<BoundListener>> bind_listeners(const Config& config, const ReaderNames& names, bool have_tls);

// The sessions of a reader: accepted on its listeners under <prefix>_max_sessions,
// <prefix>_max_sessions_per_ip and <prefix>_session_lifetime, stopped within shutdown_timeout.
class ReaderSessions {
public:
    using Factory = std::function<std::unique_ptr<ServedSession>(Fd fd, bool implicit_tls, std::string id)>;
    // The line a refused client reads in the clear; `text` says which limit ("too many connections").
    using RefusalLine = std::function<std::string(const char* text)>;

    ReaderSessions(event_base* base, const Config& config, const ReaderNames& names, Factory make,
                   RefusalLine refusal);

    // Starts accepting on the listeners (after privileges are dropped).
    void serve(std::vector<BoundListener> listeners);
    // Stops accepting, calls each session's on_stop, then `done` (at the latest after shutdown_timeout).
    void stop(std::function<void()> done);
    // A session's on_close: it is destroyed from the loop, after that returns.
    void release(ServedSession* session) { set_.release(session); }

private:
    void refuse(const SessionSet::Accepted& a, SessionSet::Refusal why);

    ReaderNames names_;
    RefusalLine refusal_;
    double shutdown_timeout_;
    SessionSet set_;
};

// A reply is often written in two sends (a status line, then the data or the tagged line): with
// Nagle's algorithm the second waits for the client's delayed ACK, 40 ms a command. Sets TCP_NODELAY.
Fd no_delay(Fd fd);

// The Factory of a reader whose sessions are `S(owner, fd, implicit_tls, id)`: each gets TCP_NODELAY
// and is started (greeting, or the handshake first on the implicit-TLS port) as soon as it is made.
template <class S, class Owner>
ReaderSessions::Factory start_sessions(Owner& owner) {
    return [&owner](Fd fd, bool implicit_tls, std::string id) -> std::unique_ptr<ServedSession> {
        auto session = std::make_unique<S>(owner, no_delay(std::move(fd)), implicit_tls, std::move(id));
        session->start();
        return session;
    };
}

// What start_reader hands over once the listeners are bound and the privileges dropped.
struct ReaderStart {
    std::optional<TlsContext> tls;
    std::vector<BoundListener> listeners;
    EventBase base;
};

// The server a reader runs: what run_reader needs of it, done by the ReaderSessions it keeps.
class ReaderServer {
public:
    virtual ~ReaderServer() = default;
    // Starts accepting on the listeners (after privileges are dropped).
    void serve(std::vector<BoundListener> listeners) { sessions().serve(std::move(listeners)); }
    // SIGTERM: stop accepting, end each session (its on_stop), then `done` (at the latest after shutdown_timeout).
    void stop(std::function<void()> done) { sessions().stop(std::move(done)); }

protected:
    virtual ReaderSessions& sessions() = 0;
};

// Loads the TLS credentials, creates the declared directories and binds the listeners (the key and
// the ports may need root), then drops privileges and makes the event loop. On failure it logs and
// exits: EX_CONFIG for TLS, EX_TEMPFAIL for the rest.
ReaderStart start_reader(const Config& config, const Declaration& decl, const ReaderNames& names);

// Serves until SIGTERM (or SIGINT) has stopped the server gracefully, logging "ready" and, once the
// server is destroyed, "stopped". Returns the exit code.
int run_reader(ReaderStart& start, std::unique_ptr<ReaderServer> server);

}  // namespace ferry
