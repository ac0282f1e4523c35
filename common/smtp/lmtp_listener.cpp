// An LMTP server on a Unix socket: binds it, accepts up to a limit, gives each session its backend and owns the sessions.
#include "common/smtp/lmtp_listener.hpp"

#include <unistd.h>

#include "common/base/log.hpp"
#include "common/event/net.hpp"
#include "common/smtp/smtp_proto.hpp"

namespace ferry::smtp {

// The SessionSet owns each LmtpSession through one of these. The peers are ferry's own daemons
// and local programs: no session lifetime, and a stop closes them with the loop.
struct LmtpListener::Held final : ServedSession {
    std::unique_ptr<LmtpSession> session;
    void on_lifetime_expired() override {}
    void on_stop() override {}
};

LmtpListener::LmtpListener(event_base* base, LmtpListenerOptions options, const LmtpSessionSettings& settings,
                           MakeBackend make)
    : base_(base),
      options_(std::move(options)),
      settings_(settings),
      make_(std::move(make)),
      sessions_(base, {std::max<size_t>(1, options_.max_sessions), 0, 0}, options_.id_prefix,
                [this](SessionSet::Accepted& a) { return make_session(a); },
                [this](const SessionSet::Accepted& a, SessionSet::Refusal) {
                    log::warnx("%s: refusing a connection: %zu sessions (%s)", options_.name.c_str(), sessions_.size(),
                               options_.limit_key.c_str());
                    std::string refusal =
                        reply(421, "4.3.2", settings_.hostname + " Too many sessions, try again later");
                    (void)!::write(a.fd.get(), refusal.data(), refusal.size());  // best effort; the client retries
                }) {}

LmtpListener::~LmtpListener() = default;

Result<void> LmtpListener::listen() {
    auto fd = net::listen_unix(options_.path, options_.mode);
    if (!fd) return fd.error();
    if (auto r = sessions_.listen(std::move(fd.value()), options_.name + " " + options_.path); !r) return r;
    sessions_.enable();
    log::info("listening on %s %s", options_.name.c_str(), options_.path.c_str());
    return {};
}

std::unique_ptr<ServedSession> LmtpListener::make_session(SessionSet::Accepted& a) {
    auto held = std::make_unique<Held>();
    auto backend = make_(a);
    held->session = std::make_unique<LmtpSession>(base_, std::move(a.fd), a.id, settings_, std::move(backend), *this);
    held_.emplace(held->session.get(), held.get());
    return held;
}

void LmtpListener::session_closed(LmtpSession* session) {
    auto it = held_.find(session);
    if (it == held_.end()) return;
    sessions_.release(it->second);
    held_.erase(it);
}

}  // namespace ferry::smtp
