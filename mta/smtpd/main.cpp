// ferry-smtpd: the SMTP server (ferry-smtpd(8)). Wires configuration, listeners and the event loop.
#include "common/daemon.hpp"
#include "common/event.hpp"
#include "common/log.hpp"
#include "common/privs.hpp"
#include "mta/smtpd/server.hpp"

int main(int argc, char** argv) {
    using namespace ferry;
    Options opt = start_program(argc, argv, "smtpd");
    EventBase base(event_base_new());
    if (!base) log::panic("cannot create the event loop");
    SignalEvents signals = install_signal_handlers(base.get());

    smtpd::Server server(base.get(), opt.config);
    if (auto r = server.listen(); !r) {
        log::errorx("%s", r.error().what().c_str());
        return 75;
    }
    if (auto r = drop_privileges(opt.config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return 75;
    }
    if (auto r = server.start(); !r) {
        log::errorx("%s", r.error().what().c_str());
        return 75;
    }
    log::info("ready");
    event_base_dispatch(base.get());
    log::info("stopped");
    return 0;
}
