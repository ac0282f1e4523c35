// ferry-smtpd: the SMTP server (ferry-smtpd(8)). Wires configuration, TLS, listeners and the event loop.
#include "common/program/daemon.hpp"
#include "common/event/event.hpp"
#include "common/base/log.hpp"
#include "common/program/privs.hpp"
#include "common/event/tls.hpp"
#include "common/program/tls_config.hpp"
#include "mta/smtpd/server.hpp"

int main(int argc, char** argv) {
    using namespace ferry;
    Options opt = start_program(argc, argv, "smtpd");
    // The key may be readable by root only: load it before dropping privileges.
    auto tls = tls_from_config(opt.config);
    if (!tls) {
        log::errorx("TLS: %s", tls.error().what().c_str());
        return 78;
    }
    if (auto r = smtpd::check_listeners(opt.config, tls->has_value()); !r) {
        log::errorx("%s", r.error().what().c_str());
        return 78;
    }
    EventBase base(event_base_new());
    if (!base) log::panic("cannot create the event loop");
    smtpd::Server server(base.get(), opt.config, std::move(tls.value()));
    SignalEvents signals = install_signal_handlers(
        base.get(), [&server, b = base.get()] { server.stop([b] { event_base_loopbreak(b); }); });
    if (auto r = server.listen(); !r) {
        log::errorx("%s", r.error().what().c_str());
        return 75;
    }
    if (auto r = drop_privileges(opt.config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return 75;
    }
    if (auto r = server.start(); !r) {  // starts the password workers: after the switch
        log::errorx("%s", r.error().what().c_str());
        return 75;
    }
    log::info("ready");
    event_base_dispatch(base.get());
    log::info("stopped");
    return 0;
}
