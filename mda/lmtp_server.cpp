// The LMTP listener of ferry-mda: accepts on mda_socket and owns the sessions.
#include "mda/lmtp_server.hpp"

#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
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

LmtpServer::LmtpServer(event_base* base, const Config& config, Deliverer& deliverer, DeliveryRecord* record)
    : config_(config),
      settings_(lmtp_settings(config)),
      deliverer_(deliverer),
      record_(record),
      listener_(base, {config.str("mda_socket"), 0660, settings_.max_sessions, "L", "lmtp", "mda_max_sessions"},
                settings_, [this](SessionSet::Accepted& a) { return make_backend(a); }) {}

std::unique_ptr<smtp::LmtpBackend> LmtpServer::make_backend(SessionSet::Accepted& a) {
    if (!pool_ || !stage_ || !uids_) log::panic("lmtp: a session before the worker pool");
    return std::make_unique<MaildirBackend>(deliverer_, config_, *pool_, *stage_, *uids_, record_, a.id);
}

}  // namespace ferry::mda
