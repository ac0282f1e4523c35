// The LMTP listener of ferry-relay: accepts qmgr's connections on relay_socket and owns the sessions.
#include "mta/relay/server.hpp"

#include <algorithm>

#include "common/smtp/smtp_proto.hpp"
#include "mta/relay/backend.hpp"

namespace ferry::relay {

namespace {

smtp::LmtpSessionSettings session_settings(const RelaySettings& relay, const Config& config) {
    smtp::LmtpSessionSettings s;
    s.hostname = relay.hostname;
    s.greeting = "ferry-relay LMTP ready";
    // qmgr waits for the replies while the transfer runs: the session must outlast every SMTP timeout.
    s.timeout = static_cast<double>(std::max<int64_t>(1, config.duration("relay_lmtp_timeout").count()));
    s.max_recipients = 1000;
    // RET, ENVID, NOTIFY and ORCPT go on to a peer that offers DSN (RFC 3461 5.2).
    s.dsn = true;
    s.message_size_limit = smtp::delivery_size_limit(config.size("message_size_limit"));
    s.limits.max_command_length = 4096;
    s.data_limits.max_message_size = s.message_size_limit;
    s.data_limits.max_line_length = std::max<size_t>(1000, config.size("smtpd_max_line_length"));
    s.data_limits.max_header_size = static_cast<size_t>(s.message_size_limit);
    return s;
}

}  // namespace

RelayServer::RelayServer(RelayContext& ctx, const Config& config)
    : ctx_(ctx),
      settings_(session_settings(ctx.settings, config)),
      listener_(ctx.base,
                {config.str("relay_socket"), 0660,
                 static_cast<size_t>(std::max<int64_t>(1, config.integer("relay_max_sessions"))), "R", "lmtp",
                 "relay_max_sessions"},
                settings_, [this](SessionSet::Accepted& a) { return std::make_unique<RelayBackend>(ctx_, a.id); }) {}

}  // namespace ferry::relay
