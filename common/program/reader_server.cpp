// The skeleton the mail readers (ferry-popd, ferry-imapd) share: listeners, session set, start-up and loop.
#include "common/program/reader_server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sysexits.h>

#include <algorithm>
#include <cstdlib>

#include "common/base/log.hpp"
#include "common/event/net.hpp"
#include "common/program/daemon.hpp"
#include "common/program/tls_config.hpp"

namespace ferry {

namespace {

enum Tag { kPlain = 0, kImplicitTls = 1 };

std::string key(const ReaderNames& names, const char* suffix) { return std::string(names.prefix) + suffix; }

SessionLimits session_limits(const Config& config, const ReaderNames& names) {
    SessionLimits l;
    l.max_sessions = static_cast<size_t>(std::max<int64_t>(1, config.integer(key(names, "_max_sessions"))));
    l.max_per_address = static_cast<size_t>(std::max<int64_t>(0, config.integer(key(names, "_max_sessions_per_ip"))));
    l.lifetime = static_cast<double>(config.duration(key(names, "_session_lifetime")).count());
    return l;
}

// Logs the failure of a start-up step and ends the process with `code`.
[[noreturn]] void fail(int code, const std::string& what) {
    log::errorx("%s", what.c_str());
    std::exit(code);
}

}  // namespace

Fd no_delay(Fd fd) {
    int on = 1;
    (void)setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);  // fails harmlessly on a non-TCP socket
    return fd;
}

Result<std::vector<BoundListener>> bind_listeners(const Config& config, const ReaderNames& names, bool have_tls) {
    std::vector<BoundListener> out;
    auto bind_all = [&](const std::string& k, bool implicit_tls) -> Result<void> {
        for (const auto& addr : config.list(k)) {
            if (implicit_tls && !have_tls) return make_error(0, "", k + " is set but tls_cert_file is not");
            auto fd = net::listen_tcp(addr);
            if (!fd) return fd.error();
            log::info("listening on %s %s", implicit_tls ? names.implicit_tls : names.plain,
                      net::local_address(fd->get()).c_str());
            out.push_back(BoundListener{std::move(fd.value()), implicit_tls});
        }
        return {};
    };
    std::string plain = key(names, "_listen"), tls = key(names, "_tls_listen");
    if (auto r = bind_all(plain, false); !r) return r.error();
    if (auto r = bind_all(tls, true); !r) return r.error();
    if (out.empty()) return make_error(0, "", "no listeners: " + plain + " and " + tls + " are both empty");
    return out;
}

ReaderSessions::ReaderSessions(event_base* base, const Config& config, const ReaderNames& names, Factory make,
                               RefusalLine refusal)
    : names_(names), refusal_(std::move(refusal)),
      shutdown_timeout_(static_cast<double>(config.duration("shutdown_timeout").count())),
      set_(base, session_limits(config, names), names.id_prefix,
           [make = std::move(make)](SessionSet::Accepted& a) {
               return make(std::move(a.fd), a.tag == kImplicitTls, a.id);
           },
           [this](const SessionSet::Accepted& a, SessionSet::Refusal why) { refuse(a, why); }) {}

void ReaderSessions::serve(std::vector<BoundListener> listeners) {
    for (auto& l : listeners) {
        std::string name = std::string(l.implicit_tls ? names_.implicit_tls : names_.plain) + " " +
                           net::local_address(l.fd.get());
        if (auto r = set_.listen(std::move(l.fd), name, l.implicit_tls ? kImplicitTls : kPlain); !r)
            log::panic("%s", r.error().what().c_str());
    }
    set_.enable();
}

void ReaderSessions::stop(std::function<void()> done) { set_.stop(shutdown_timeout_, std::move(done)); }

void ReaderSessions::refuse(const SessionSet::Accepted& a, SessionSet::Refusal why) {
    bool per_address = why == SessionSet::Refusal::per_address;
    const char* text = per_address ? "too many connections from your address" : "too many connections";
    std::string limit = key(names_, per_address ? "_max_sessions_per_ip" : "_max_sessions");
    log::warnx("refusing connection from %s: %s (%s)", a.address.c_str(), text, limit.c_str());
    // An implicit-TLS client expects a handshake, not a line; it just sees the close.
    if (a.tag == kImplicitTls) return;
    std::string line = refusal_(text);
    (void)!::send(a.fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

ReaderStart start_reader(const Config& config, const Declaration& decl, const ReaderNames& names) {
    auto tls = tls_from_config(config);
    if (!tls) fail(EX_CONFIG, "TLS: " + tls.error().what());
    if (auto r = create_directories(decl, config); !r) fail(EX_TEMPFAIL, r.error().what());
    auto listeners = bind_listeners(config, names, tls->has_value());
    if (!listeners) fail(EX_TEMPFAIL, listeners.error().what());
    if (auto r = drop_privileges(decl, config); !r) fail(EX_TEMPFAIL, r.error().what());
    ReaderStart start{std::move(tls.value()), std::move(listeners.value()), EventBase(event_base_new())};
    if (!start.base) log::panic("event_base_new failed");
    return start;
}

int run_reader(ReaderStart& start, std::unique_ptr<ReaderServer> server) {
    event_base* base = start.base.get();
    {
        auto signals = install_signal_handlers(
            base, [&server, base] { server->stop([base] { event_base_loopbreak(base); }); });
        server->serve(std::move(start.listeners));
        log::info("ready");
        event_base_dispatch(base);
    }
    server.reset();
    log::info("stopped");
    return 0;
}

}  // namespace ferry
