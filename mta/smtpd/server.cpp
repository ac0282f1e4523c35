// ferry-smtpd's listeners and sessions: binds smtp/submission/smtps, accepts, and owns every Session.
#include "mta/smtpd/server.hpp"

#include "mta/smtpd/dkim_check.hpp"
#include <sys/socket.h>

#include <algorithm>
#include <ctime>
#include <utility>

#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/event/net.hpp"
#include "common/event/resolver_cache.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "common/spool/spool.hpp"
#include "mta/smtpd/attachment_check.hpp"
#include "mta/smtpd/clamd_check.hpp"
#include "mta/smtpd/dkim_check.hpp"
#include "mta/smtpd/greylist_check.hpp"
#include "mta/smtpd/session.hpp"
#include "mta/smtpd/spam_check.hpp"

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
    s.max_received = static_cast<size_t>(std::max<int64_t>(0, config.integer("smtpd_max_received")));
    s.max_errors = static_cast<int>(config.integer("smtpd_max_errors"));
    s.max_sessions = static_cast<size_t>(std::max<int64_t>(1, config.integer("smtpd_max_sessions")));
    s.max_sessions_per_ip = static_cast<size_t>(std::max<int64_t>(0, config.integer("smtpd_max_sessions_per_ip")));
    s.lifetime = static_cast<double>(config.duration("smtpd_session_lifetime").count());
    s.min_data_rate = static_cast<uint64_t>(std::max<int64_t>(0, config.integer("smtpd_min_data_rate")));
    s.timeout = static_cast<double>(config.duration("smtpd_timeout").count());
    s.handshake_timeout = static_cast<double>(config.duration("tls_handshake_timeout").count());
    s.plaintext_auth = config.str("plaintext_auth");
    if (auto n = net::parse_networks(config.str("smtpd_relay_networks"))) s.relay_networks = std::move(n.value());
    s.commit_threads = static_cast<int>(std::clamp<int64_t>(config.integer("smtpd_commit_threads"), 1, 256));
    std::string spf = config.str("smtpd_spf_policy");
    s.spf_policy = spf == "off" ? SpfPolicy::off : spf == "reject_fail" ? SpfPolicy::reject_fail : SpfPolicy::record;
    s.spf_timeout = std::max(1.0, static_cast<double>(config.duration("smtpd_spf_timeout").count()));
    s.dkim_verify = config.boolean("smtpd_dkim_verify");
    return s;
}

Result<void> check_listeners(const Config& config, bool have_tls) {
    if (!config.list("smtpd_smtps_listen").empty() && !have_tls)
        return make_error(0, "", "smtpd_smtps_listen is set but tls_cert_file is not: implicit TLS needs a certificate");
    if (auto n = net::parse_networks(config.str("smtpd_relay_networks")); !n)
        return make_error(0, "", "smtpd_relay_networks: " + n.error().what());
    if (config.boolean("spam_filter"))
        if (auto s = spam_settings(config); !s) return s.error();
    if (auto g = GreylistSettings::from(config); !g) return g.error();
    return {};
}

Server::Server(event_base* base, const Config& config, std::optional<TlsContext> tls)
    : base_(base), config_(config), settings_(Settings::from(config)), tls_(std::move(tls)),
      notifier_(config.str("qmgr_socket")),
      sessions_(base, {settings_.max_sessions, settings_.max_sessions_per_ip, settings_.lifetime}, "S",
                [this](SessionSet::Accepted& a) { return make_session(a); },
                [this](const SessionSet::Accepted& a, SessionSet::Refusal why) { refuse(a, why); }) {}

Server::~Server() = default;

Result<void> Server::listen() {
    for (const auto& a : config_.list("smtpd_listen"))
        if (auto r = listen_on(ListenerKind::smtp, a); !r) return r;
    for (const auto& a : config_.list("smtpd_submission_listen"))
        if (auto r = listen_on(ListenerKind::submission, a); !r) return r;
    for (const auto& a : config_.list("smtpd_smtps_listen"))
        if (auto r = listen_on(ListenerKind::smtps, a); !r) return r;
    if (!listening_) return make_error(0, "", "no listeners configured", "set smtpd_listen");
    if (!tls_ && !config_.list("smtpd_submission_listen").empty())
        log::warnx("submission without tls_cert_file: no STARTTLS, so AUTH (required there) only where "
                   "plaintext_auth = %s allows it", settings_.plaintext_auth.c_str());
    return {};
}

Result<void> Server::listen_on(ListenerKind kind, const std::string& address) {
    auto fd = net::listen_tcp(address);
    if (!fd) return fd.error();
    std::string bound = net::local_address(fd->get());
    std::string name = std::string(kind_name(kind)) + " " + bound;
    auto r = sessions_.listen(std::move(fd.value()), name, static_cast<int>(kind));
    if (!r) return r;
    log::info("listening on %s %s", kind_name(kind), bound.c_str());
    listening_ = true;
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
    queue_sync_ = std::make_unique<GroupSync>(GroupSync::directory(settings_.spool_dir + "/" + spool::kQueue));
    commit_ = std::make_unique<CommitStage>(base_, settings_.commit_threads);
    bool dkim_verify = settings_.dkim_verify;
    // One condition for DNS: some check asks it something.
    bool needs_dns = settings_.spf_policy != SpfPolicy::off || dkim_verify ||
                     (config_.boolean("spam_filter") && !config_.list("spam_dnsbl_zones").empty());
    if (needs_dns) {
        auto r = dns::make_resolver(base_, config_.str("dns_servers"),
                                    static_cast<double>(config_.duration("dns_timeout").count()));
        if (!r) return r.error();
        resolver_ = dns::with_cache(base_, std::move(r.value()), dns::dns_cache_limits(config_));
    }
    if (auto r = add_clamd_check(); !r) return r;
    check_pool_ = std::make_unique<WorkerPool>(base_, static_cast<int>(std::clamp<int64_t>(
                                                          config_.integer("smtpd_check_workers"), 1, 64)));
    auto attachments = AttachmentSettings::from(config_);
    if (!attachments) return attachments.error();
    checks_.push_back(std::make_unique<AttachmentCheck>(base_, *check_pool_, std::move(attachments.value())));
    std::string dmarc = config_.str("smtpd_dmarc");
    if (dkim_verify)
        checks_.push_back(std::make_unique<DkimCheck>(base_, *resolver_, settings_.hostname,
                                                      std::max(1.0, static_cast<double>(config_.duration("smtpd_dkim_timeout").count())),
                                                      dmarc == "off" ? DmarcMode::off : dmarc == "reject" ? DmarcMode::reject : DmarcMode::record,
                                                      config_.boolean("smtpd_arc_verify")));
    if (auto r = add_spam_check(); !r) return r;
    if (auto r = add_greylist_check(); !r) return r;
    sessions_.enable();
    return {};
}

// First of the checks: infected mail is refused before anything else looks at it.
Result<void> Server::add_clamd_check() {
    std::string address = config_.str("clamd_address");
    if (address.empty()) return {};
    clamd_pool_ = std::make_unique<WorkerPool>(base_, static_cast<int>(std::clamp<int64_t>(config_.integer("clamd_workers"), 1, 64)));
    ClamdSettings s{address, std::max(1.0, static_cast<double>(config_.duration("clamd_timeout").count())),
                    config_.boolean("virus_scan_fail_open"), settings_.hostname};
    checks_.push_back(make_clamd_check(*clamd_pool_, std::move(s)));
    return {};
}

// Last of the checks: a virus found or a DKIM result comes before the score.
Result<void> Server::add_spam_check() {
    if (!config_.boolean("spam_filter")) return {};
    auto spam = spam_settings(config_);
    if (!spam) return spam.error();
    spam_pool_ = std::make_unique<WorkerPool>(base_, static_cast<int>(std::clamp<int64_t>(config_.integer("spam_workers"), 1, 64)));
    checks_.push_back(make_spam_check(base_, *spam_pool_, resolver_.get(), std::move(spam.value())));
    return {};
}

// After every other check: it passes what DMARC or a DNS allow list vouched for, and a message
// refused anyway is not remembered as an attempt.
Result<void> Server::add_greylist_check() {
    auto settings = GreylistSettings::from(config_);
    if (!settings) return settings.error();
    if (!settings->any()) return {};
    checks_.push_back(std::make_unique<GreylistCheck>(*check_pool_, std::move(settings.value())));
    return {};
}

namespace {

double monotonic_seconds() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

void Server::stop(std::function<void()> done) {
    double grace = static_cast<double>(config_.duration("shutdown_timeout").count());
    stopped_ = std::move(done);
    stop_deadline_ = monotonic_seconds() + grace;
    sessions_.stop(grace, [this] { drain_commits(); });
}

// A message whose client left during its commit still gets its log line and qmgr's notice.
void Server::drain_commits() {
    if (!commit_ || commit_->pending() == 0 || monotonic_seconds() >= stop_deadline_) {
        if (auto done = std::exchange(stopped_, nullptr)) done();
        return;
    }
    if (!drain_ev_)
        drain_ev_.reset(evtimer_new(
            base_, [](evutil_socket_t, short, void* arg) noexcept { static_cast<Server*>(arg)->drain_commits(); },
            this));
    timeval tick = to_timeval(0.01);
    evtimer_add(drain_ev_.get(), &tick);
}

std::unique_ptr<ServedSession> Server::make_session(SessionSet::Accepted& a) {
    return std::make_unique<Session>(*this, std::move(a.fd), static_cast<ListenerKind>(a.tag), a.id);
}

// Over a limit: 421 and close (RFC 5321 3.8), in the clear except on smtps, where the client
// expects a TLS handshake and just sees the close.
void Server::refuse(const SessionSet::Accepted& a, SessionSet::Refusal why) {
    auto kind = static_cast<ListenerKind>(a.tag);
    std::string text;
    if (why == SessionSet::Refusal::per_address) {
        log::warnx("connect from [%s] on %s refused: %zu sessions from that address already "
                   "(smtpd_max_sessions_per_ip)",
                   a.address.c_str(), kind_name(kind), sessions_.count(a.address));
        text = settings_.hostname + " Error: too many connections from your address, try again later";
    } else {
        log::warnx("connect from [%s] on %s refused: %zu sessions already (smtpd_max_sessions)", a.address.c_str(),
                   kind_name(kind), sessions_.size());
        text = settings_.hostname + " Too many connections, try again later";
    }
    if (kind == ListenerKind::smtps) return;
    std::string refusal = smtp::reply(421, "4.7.0", text);
    (void)::send(a.fd.get(), refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace ferry::smtpd
