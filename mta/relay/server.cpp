// The LMTP listener of ferry-relay: accepts qmgr's connections on relay_socket and owns the sessions.
#include "mta/relay/server.hpp"

#include <unistd.h>

#include <algorithm>

#include "common/base/log.hpp"
#include "common/event/net.hpp"
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

struct RelayServer::Held final : ServedSession {
    std::unique_ptr<smtp::LmtpSession> session;
    void on_lifetime_expired() override {}
    void on_stop() override {}
};

RelayServer::RelayServer(RelayContext& ctx, const Config& config)
    : ctx_(ctx),
      settings_(session_settings(ctx.settings, config)),
      path_(config.str("relay_socket")),
      sessions_(ctx.base, {static_cast<size_t>(std::max<int64_t>(1, config.integer("relay_max_sessions"))), 0, 0}, "R",
                [this](SessionSet::Accepted& a) { return make_session(a); },
                [this](const SessionSet::Accepted& a, SessionSet::Refusal) {
                    log::warnx("lmtp: refusing a connection: %zu sessions (relay_max_sessions)", sessions_.size());
                    std::string refusal =
                        smtp::reply(421, "4.3.2", settings_.hostname + " Too many sessions, try again later");
                    (void)!::write(a.fd.get(), refusal.data(), refusal.size());  // best effort; qmgr retries
                }) {}

RelayServer::~RelayServer() = default;

Result<void> RelayServer::listen() {
    auto fd = net::listen_unix(path_, 0660);
    if (!fd) return fd.error();
    if (auto r = sessions_.listen(std::move(fd.value()), "lmtp " + path_); !r) return r;
    sessions_.enable();
    log::info("listening on lmtp %s", path_.c_str());
    return {};
}

std::unique_ptr<ServedSession> RelayServer::make_session(SessionSet::Accepted& a) {
    auto held = std::make_unique<Held>();
    auto backend = std::make_unique<RelayBackend>(ctx_, a.id);
    held->session = std::make_unique<smtp::LmtpSession>(ctx_.base, std::move(a.fd), a.id, settings_, std::move(backend), *this);
    held_.emplace(held->session.get(), held.get());
    return held;
}

void RelayServer::session_closed(smtp::LmtpSession* session) {
    auto it = held_.find(session);
    if (it == held_.end()) return;
    sessions_.release(it->second);
    held_.erase(it);
}

}  // namespace ferry::relay
