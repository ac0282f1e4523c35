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

Server::Server(event_base* base, const Config& config, std::optional<TlsContext> tls, Authenticator& auth)
    : base_(base), settings_(settings_from_config(config)), tls_(std::move(tls)), auth_(auth),
      max_sessions_(static_cast<size_t>(config.integer("popd_max_sessions"))),
      max_per_ip_(static_cast<size_t>(config.integer("popd_max_sessions_per_ip"))) {}

Server::~Server() {
    listeners_.clear();
    sessions_.clear();  // each session's Maildrop unlocks as it goes
}

void Server::serve(std::vector<BoundListener> listeners) {
    for (auto& l : listeners) {
        auto bound = std::make_unique<Bound>();
        bound->implicit_tls = l.implicit_tls;
        bound->server = this;
        std::string name = std::string(l.implicit_tls ? "pop3s " : "pop3 ") + net::local_address(l.fd.get());
        auto al = AcceptListener::open(base_, std::move(l.fd), name, on_accept, bound.get());
        if (!al) log::panic("%s", al.error().what().c_str());
        bound->listener = std::move(al.value());
        listeners_.push_back(std::move(bound));
    }
}

void Server::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
    auto* b = static_cast<Bound*>(arg);
    b->server->accept(Fd(fd), b->implicit_tls);
}

std::string Server::next_id() {
    // Start time and a counter: unique across restarts, short enough for every log line.
    static const long start = static_cast<long>(time(nullptr));
    char buf[40];
    snprintf(buf, sizeof buf, "P%lX%04llX", start, static_cast<unsigned long long>(++counter_));
    return buf;
}

void Server::accept(Fd fd, bool implicit_tls) {
    std::string ip = net::peer_address(fd.get());
    const char* why = nullptr;
    if (sessions_.size() >= max_sessions_) why = "too many connections";
    else if (per_ip_[ip] >= max_per_ip_) why = "too many connections from your address";
    if (why) {
        log::warnx("refusing connection from %s: %s", ip.c_str(), why);
        // A pop3s client expects a TLS handshake, not a line; it just sees the close.
        if (!implicit_tls) {
            std::string line = err(kSysTemp, why);
            (void)!::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        if (per_ip_[ip] == 0) per_ip_.erase(ip);
        return;
    }
    ++per_ip_[ip];
    auto session = std::make_unique<Session>(*this, std::move(fd), implicit_tls, next_id());
    Session* s = session.get();
    sessions_.emplace(s, std::move(session));
    s->start();
}

void Server::session_closed(Session* s) {
    auto it = sessions_.find(s);
    if (it == sessions_.end()) return;
    auto ip = per_ip_.find(s->peer());
    if (ip != per_ip_.end() && --ip->second == 0) per_ip_.erase(ip);
    sessions_.erase(it);
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
