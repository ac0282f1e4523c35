// The ManageSieve server: its settings from ferry.conf, the TLS context, the authenticator and its sessions.
#include "mda/managesieve/server.hpp"

#include <algorithm>

#include "common/program/daemon.hpp"
#include "mda/managesieve/response.hpp"
#include "mda/managesieve/session.hpp"

namespace ferry::managesieve {

Settings settings_from_config(const Config& config) {
    Settings s;
    s.limits.max_line = std::max<size_t>(config.size("managesieve_max_line_length"), 256);
    s.limits.max_literal = std::max<size_t>(config.size("managesieve_max_script_size"), 1);
    s.max_nesting = static_cast<size_t>(std::max<int64_t>(config.integer("sieve_max_nesting"), 1));
    s.max_redirects = std::max<int64_t>(config.integer("sieve_max_redirects"), 0);
    s.max_scripts = static_cast<size_t>(std::max<int64_t>(config.integer("managesieve_max_scripts"), 1));
    s.max_errors = static_cast<unsigned>(std::clamp<int64_t>(config.integer("managesieve_max_errors"), 1, 1 << 20));
    s.idle_timeout = static_cast<double>(config.duration("managesieve_idle_timeout").count());
    s.handshake_timeout = static_cast<double>(config.duration("tls_handshake_timeout").count());
    s.command_deadline = static_cast<double>(config.duration("managesieve_command_deadline").count());
    s.mail_dir = config.str("mail_dir");
    s.hostname = my_hostname(config);
    s.plaintext_auth = config.str("plaintext_auth");
    return s;
}

Server::Server(event_base* base, const Config& config, std::optional<TlsContext> tls, Authenticator& auth)
    : base_(base), settings_(settings_from_config(config)), tls_(std::move(tls)), auth_(auth),
      sessions_(base, config, kNames, start_sessions<Session>(*this),
                [](const char* text) { return bye("TRYLATER", text); }) {}

Server::~Server() = default;

void Server::session_closed(Session* s) { sessions_.release(s); }

}  // namespace ferry::managesieve
