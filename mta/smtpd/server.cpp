// ferry-smtpd's listeners and sessions: binds smtp/submission/smtps, accepts, and owns every Session.
#include "mta/smtpd/server.hpp"

#include <sys/socket.h>

#include <algorithm>

#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/event/net.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "common/spool/spool.hpp"
#include "mta/smtpd/session.hpp"

namespace ferry::smtpd {

Settings Settings::from(const Config& config) {
    Settings s;
    s.hostname = my_hostname(config);
    s.spool_dir = config.str("spool_dir");
    // RFC 5321 4.5.3.1.4: a server must take command lines of 512 octets.
    s.max_command_length = std::max<size_t>(512, config.size("smtpd_max_command_length"));
    s.max_line_length = std::max<size_t>(1000, config.size("smtpd_max_line_length"));  // 4.5.3.1.6
    s.max_header_size = config.size("smtpd_max_header_size");
    s.max_recipients = static_cast<size_t>(std::max<int64_t>(1, config.integer("smtpd_max_recipients")));
    s.max_errors = static_cast<int>(config.integer("smtpd_max_errors"));
    s.max_sessions = static_cast<size_t>(std::max<int64_t>(1, config.integer("smtpd_max_sessions")));
    s.timeout = static_cast<double>(config.duration("smtpd_timeout").count());
    s.handshake_timeout = static_cast<double>(config.duration("tls_handshake_timeout").count());
    s.plaintext_auth = config.str("plaintext_auth");
    return s;
}

Result<void> check_listeners(const Config& config, bool have_tls) {
    if (!config.list("smtpd_smtps_listen").empty() && !have_tls)
        return make_error(0, "", "smtpd_smtps_listen is set but tls_cert_file is not: implicit TLS needs a certificate");
    return {};
}

Server::Server(event_base* base, const Config& config, std::optional<TlsContext> tls)
    : base_(base), config_(config), settings_(Settings::from(config)), tls_(std::move(tls)),
      notifier_(config.str("qmgr_socket")) {}

Server::~Server() {
    listeners_.clear();
    sessions_.clear();
}

Result<void> Server::listen() {
    for (const auto& a : config_.list("smtpd_listen"))
        if (auto r = listen_on(ListenerKind::smtp, a); !r) return r;
    for (const auto& a : config_.list("smtpd_submission_listen"))
        if (auto r = listen_on(ListenerKind::submission, a); !r) return r;
    for (const auto& a : config_.list("smtpd_smtps_listen"))
        if (auto r = listen_on(ListenerKind::smtps, a); !r) return r;
    if (listeners_.empty()) return make_error(0, "", "no listeners configured", "set smtpd_listen");
    if (!tls_ && !config_.list("smtpd_submission_listen").empty())
        log::warnx("submission without tls_cert_file: no STARTTLS, so AUTH (required there) only where "
                   "plaintext_auth = %s allows it", settings_.plaintext_auth.c_str());
    return {};
}

Result<void> Server::listen_on(ListenerKind kind, const std::string& address) {
    auto fd = net::listen_tcp(address);
    if (!fd) return fd.error();
    std::string bound = net::local_address(fd->get());
    auto l = std::make_unique<Listening>();
    l->server = this;
    l->kind = kind;
    auto al = AcceptListener::open(base_, std::move(fd.value()), std::string(kind_name(kind)) + " " + bound, on_accept,
                                   l.get());
    if (!al) return al.error();
    l->listener = std::move(al.value());
    l->listener.disable();  // until start()
    log::info("listening on %s %s", kind_name(kind), bound.c_str());
    listeners_.push_back(std::move(l));
    return {};
}

Result<void> Server::start() {
    if (auto r = spool::ensure_layout(settings_.spool_dir); !r) return r;
    accounts_ = open_account_db(config_);
    aliases::Limits alias_limits{static_cast<int>(config_.integer("alias_max_depth")),
                                 static_cast<size_t>(config_.integer("alias_max_targets"))};
    std::string postmaster = config_.str("postmaster_address");
    if (postmaster.empty()) postmaster = "postmaster@" + settings_.hostname;
    // RFC 5321 4.5.1 requires <Postmaster> to work; say so at start rather than at the first refusal.
    if (auto hosted = accounts_->has_domain(domain_of(postmaster)); hosted && !hosted.value())
        log::warnx("postmaster_address %s is not in a hosted domain: RCPT TO:<Postmaster> will be refused; "
                   "set postmaster_address to an account or alias", postmaster.c_str());
    policy_ = std::make_unique<Policy>(*accounts_, postmaster, config_.size("message_size_limit"), alias_limits);
    auth_ = std::make_unique<Authenticator>(base_, *accounts_, config_);
    for (auto& l : listeners_) l->listener.enable();
    return {};
}

void Server::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int, void* arg) {
    auto* l = static_cast<Listening*>(arg);
    l->server->accept(l->kind, fd, sa);
}

void Server::accept(ListenerKind kind, evutil_socket_t fd, const sockaddr* sa) {
    Fd conn(fd);
    if (sessions_.size() >= settings_.max_sessions) {
        std::string client = net::format_address(sa, false);
        log::warnx("connect from [%s] refused: %zu sessions already (smtpd_max_sessions)", client.c_str(),
                   sessions_.size());
        std::string refusal = smtp::reply(421, "4.7.0", settings_.hostname + " Too many connections, try again later");
        (void)::send(conn.get(), refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        return;
    }
    auto session = std::make_unique<Session>(*this, std::move(conn), kind);
    Session* s = session.get();
    sessions_.emplace(s, std::move(session));
}

void Server::drop(Session* session) { sessions_.erase(session); }

}  // namespace ferry::smtpd
