// The ManageSieve server: its settings from ferry.conf, the TLS context, the authenticator and its sessions.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/auth/auth.hpp"
#include "common/event/tls.hpp"
#include "common/program/config.hpp"
#include "common/program/reader_server.hpp"
#include "mda/managesieve/command.hpp"

namespace ferry::managesieve {

// managesieve_listen (RFC 5804 port 4190), managesieve_tls_listen, managesieve_max_sessions ...; sessions "S...".
inline constexpr ReaderNames kNames{"managesieve", "sieve", "sieves", "S"};

// The extensions mda/sieve compiles, for the SIEVE capability (tests/unit checks each is accepted).
inline constexpr const char* kSieveExtensions =
    "fileinto reject ereject envelope encoded-character copy mailbox subaddress relational body variables "
    "imap4flags vacation date index environment editheader duplicate comparator-i;octet "
    "comparator-i;ascii-casemap comparator-i;ascii-numeric";

// What every session reads from ferry.conf, once.
struct Settings {
    Limits limits;                   // managesieve_max_line_length, managesieve_max_script_size
    size_t max_nesting = 32;         // sieve_max_nesting: what ferry-mda compiles, uploads are held to
    int64_t max_redirects = 4;       // sieve_max_redirects, announced as MAXREDIRECTS
    size_t max_scripts = 20;         // managesieve_max_scripts
    unsigned max_errors = 20;        // managesieve_max_errors: bad commands in a row before BYE
    double idle_timeout = 1800;      // managesieve_idle_timeout
    double handshake_timeout = 30;   // tls_handshake_timeout
    double command_deadline = 60;    // managesieve_command_deadline
    std::string mail_dir;
    std::string hostname;
    std::string plaintext_auth;      // never | loopback | always
};

Settings settings_from_config(const Config& config);

class Session;

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

private:
    ReaderSessions& sessions() override { return sessions_; }

    event_base* base_;
    Settings settings_;
    std::optional<TlsContext> tls_;
    Authenticator& auth_;
    ReaderSessions sessions_;
};

}  // namespace ferry::managesieve
