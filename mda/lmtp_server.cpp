// The LMTP listener of ferry-mda: accepts on mda_socket and owns the sessions.
#include "mda/lmtp_server.hpp"

#include <unistd.h>

#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/event/net.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "mda/lmtp_backend.hpp"

namespace ferry::mda {

LmtpSettings lmtp_settings(const Config& config) {
    LmtpSettings s;
    s.hostname = my_hostname(config);
    s.greeting = "ferry-mda LMTP ready";
    s.timeout = static_cast<double>(config.duration("mda_timeout").count());
    s.max_sessions = static_cast<size_t>(config.integer("mda_max_sessions"));
    s.max_recipients = static_cast<size_t>(config.integer("mda_max_recipients"));
    // What smtpd accepted at the limit arrives here with its Received: header on top.
    s.message_size_limit = smtp::delivery_size_limit(config.size("message_size_limit"));
    // RFC 5321 4.5.3.1.4: a command line may never be limited below 512.
    s.limits.max_command_length = std::max<size_t>(512, config.size("mda_max_command_length"));
    s.data_limits.max_message_size = s.message_size_limit;
    s.data_limits.max_line_length = std::max<size_t>(1000, config.size("mda_max_line_length"));
    // The header section is bounded by the message size: smtpd already applied its own header limit.
    s.data_limits.max_header_size = static_cast<size_t>(s.message_size_limit);
    return s;
}

// The SessionSet owns each LmtpSession through one of these.
struct LmtpServer::Held final : ServedSession {
    std::unique_ptr<LmtpSession> session;
    void on_lifetime_expired() override {}  // qmgr's connections have no lifetime
    void on_stop() override {}
};

LmtpServer::LmtpServer(event_base* base, const Config& config, Deliverer& deliverer, DeliveryRecord* record)
    : base_(base), config_(config), settings_(lmtp_settings(config)), deliverer_(deliverer), record_(record),
      path_(config.str("mda_socket")),
      sessions_(base, {settings_.max_sessions, 0, 0}, "L", [this](SessionSet::Accepted& a) { return make_session(a); },
                [this](const SessionSet::Accepted& a, SessionSet::Refusal) {
                    log::warnx("lmtp: refusing a connection: %zu sessions (mda_max_sessions)", sessions_.size());
                    std::string refusal =
                        smtp::reply(421, "4.3.2", settings_.hostname + " Too many sessions, try again later");
                    (void)!::write(a.fd.get(), refusal.data(), refusal.size());  // best effort; the peer retries
                }) {}

LmtpServer::~LmtpServer() = default;

Result<void> LmtpServer::listen() {
    auto fd = net::listen_unix(path_, 0660);
    if (!fd) return fd.error();
    if (auto r = sessions_.listen(std::move(fd.value()), "lmtp " + path_); !r) return r;
    sessions_.enable();
    log::info("listening on lmtp %s", path_.c_str());
    return {};
}

std::unique_ptr<ServedSession> LmtpServer::make_session(SessionSet::Accepted& a) {
    if (!pool_ || !stage_ || !uids_) log::panic("lmtp: a session before the worker pool");
    auto held = std::make_unique<Held>();
    auto backend = std::make_unique<MaildirBackend>(deliverer_, config_, *pool_, *stage_, *uids_, record_, a.id);
    held->session = std::make_unique<LmtpSession>(base_, std::move(a.fd), a.id, settings_, std::move(backend), *this);
    held_.emplace(held->session.get(), held.get());
    return held;
}

void LmtpServer::session_closed(LmtpSession* session) {
    auto it = held_.find(session);
    if (it == held_.end()) return;
    sessions_.release(it->second);
    held_.erase(it);
}

}  // namespace ferry::mda
