// The POP3 server: bound listeners, accepting connections under session limits, and session ownership.
#include "popd/listener.hpp"

#include <sys/socket.h>
#include <time.h>

#include <cstdio>

#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/event/net.hpp"
#include "popd/response.hpp"

namespace ferry::pop3 {

Result<std::vector<BoundListener>> bind_listeners(const Config& config, bool have_tls) {
    std::vector<BoundListener> out;
    auto bind_all = [&](const char* key, bool implicit_tls) -> Result<void> {
        for (const auto& addr : config.list(key)) {
            if (implicit_tls && !have_tls)
                return make_error(0, "", std::string(key) + " is set but tls_cert_file is not");
            auto fd = net::listen_tcp(addr);
            if (!fd) return fd.error();
            log::info("listening on %s %s", implicit_tls ? "pop3s" : "pop3", net::local_address(fd->get()).c_str());
            out.push_back(BoundListener{std::move(fd.value()), implicit_tls});
        }
        return {};
    };
    if (auto r = bind_all("popd_listen", false); !r) return r.error();
    if (auto r = bind_all("popd_tls_listen", true); !r) return r.error();
    if (out.empty()) return make_error(0, "", "no listeners: popd_listen and popd_tls_listen are both empty");
    return out;
}

Settings settings_from_config(const Config& config) {
    Settings s;
    s.limits.max_line = std::max<size_t>(config.size("popd_max_line_length"), 64);
    s.idle_timeout = static_cast<double>(config.duration("popd_idle_timeout").count());
    s.handshake_timeout = static_cast<double>(config.duration("tls_handshake_timeout").count());
    s.mail_dir = config.str("mail_dir");
    s.hostname = my_hostname(config);
    s.plaintext_auth = config.str("plaintext_auth");
    s.expire = config.str("popd_expire");
    s.login_delay = config.duration("popd_login_delay");
    s.command_deadline = static_cast<double>(config.duration("popd_command_deadline").count());
    return s;
}

Result<void> check_config(const Config& config) {
    std::string expire = config.str("popd_expire");
    if (!expire.empty() && expire != "never" && !parse_integer(expire))
        return make_error(0, "", "bad value \"" + expire + "\" for popd_expire: expected never or a number of days");
    if (auto n = parse_integer(expire); n && *n < 0)
        return make_error(0, "", "bad value \"" + expire + "\" for popd_expire: expected never or a number of days");
    return {};
}

namespace {

SessionLimits session_limits(const Config& config) {
    SessionLimits l;
    l.max_sessions = static_cast<size_t>(std::max<int64_t>(1, config.integer("popd_max_sessions")));
    l.max_per_address = static_cast<size_t>(std::max<int64_t>(0, config.integer("popd_max_sessions_per_ip")));
    l.lifetime = static_cast<double>(config.duration("popd_session_lifetime").count());
    return l;
}

enum Tag { kPop3 = 0, kPop3s = 1 };

}  // namespace

Server::Server(event_base* base, const Config& config, std::optional<TlsContext> tls, Authenticator& auth)
    : base_(base), settings_(settings_from_config(config)), tls_(std::move(tls)), auth_(auth),
      shutdown_timeout_(static_cast<double>(config.duration("shutdown_timeout").count())),
      sessions_(base, session_limits(config), "P", [this](SessionSet::Accepted& a) { return make_session(a); },
                [this](const SessionSet::Accepted& a, SessionSet::Refusal why) { refuse(a, why); }) {}

Server::~Server() = default;

void Server::serve(std::vector<BoundListener> listeners) {
    for (auto& l : listeners) {
        std::string name = std::string(l.implicit_tls ? "pop3s " : "pop3 ") + net::local_address(l.fd.get());
        if (auto r = sessions_.listen(std::move(l.fd), name, l.implicit_tls ? kPop3s : kPop3); !r)
            log::panic("%s", r.error().what().c_str());
    }
    sessions_.enable();
}

void Server::stop(std::function<void()> done) { sessions_.stop(shutdown_timeout_, std::move(done)); }

std::unique_ptr<ServedSession> Server::make_session(SessionSet::Accepted& a) {
    auto session = std::make_unique<Session>(*this, std::move(a.fd), a.tag == kPop3s, a.id);
    session->start();
    return session;
}

void Server::refuse(const SessionSet::Accepted& a, SessionSet::Refusal why) {
    const char* text = why == SessionSet::Refusal::per_address ? "too many connections from your address"
                                                                : "too many connections";
    const char* key = why == SessionSet::Refusal::per_address ? "popd_max_sessions_per_ip" : "popd_max_sessions";
    log::warnx("refusing connection from %s: %s (%s)", a.address.c_str(), text, key);
    // A pop3s client expects a TLS handshake, not a line; it just sees the close.
    if (a.tag == kPop3s) return;
    std::string line = err(kSysTemp, text);
    (void)!::send(a.fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

std::chrono::seconds Server::login_wait(const std::string& user) const {
    if (settings_.login_delay.count() == 0) return std::chrono::seconds(0);
    auto it = last_login_.find(user);
    if (it == last_login_.end()) return std::chrono::seconds(0);
    auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - it->second);
    return elapsed >= settings_.login_delay ? std::chrono::seconds(0) : settings_.login_delay - elapsed;
}

void Server::record_login(const std::string& user) {
    if (settings_.login_delay.count() == 0) return;
    auto now = std::chrono::steady_clock::now();
    last_login_[user] = now;
    // Forget entries past the delay so the map stays as small as the set of recent users.
    for (auto it = last_login_.begin(); it != last_login_.end();)
        it = now - it->second >= settings_.login_delay ? last_login_.erase(it) : std::next(it);
}

}  // namespace ferry::pop3
