// The POP3 server: bound listeners, accepting connections under session limits, and session ownership.
#include "popd/listener.hpp"

#include <time.h>

#include <cstdio>

#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "popd/response.hpp"

namespace ferry::pop3 {

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

Server::Server(event_base* base, const Config& config, std::optional<TlsContext> tls, Authenticator& auth)
    : base_(base), settings_(settings_from_config(config)), tls_(std::move(tls)), auth_(auth),
      pool_(base, static_cast<int>(std::max<int64_t>(1, config.integer("popd_workers")))),
      sessions_(base, config, kNames, start_sessions<Session>(*this),
                [](const char* text) { return err(kSysTemp, text); }) {}

Server::~Server() = default;

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
