// ferry-smtpd: the SMTP server (ferry-smtpd(8)). Wires configuration, TLS, listeners and the event loop.
#include <sysexits.h>

#include "common/program/daemon.hpp"
#include "common/event/event.hpp"
#include "common/base/log.hpp"
#include "common/program/declaration.hpp"
#include "common/event/tls.hpp"
#include "common/program/tls_config.hpp"
#include "common/spool/spare.hpp"
#include "common/spool/spool.hpp"
#include "mta/smtpd/server.hpp"

using namespace ferry;

// ferry-smtpd(8), FILES: it writes into the spool, reads the account database, keeps the greylisting
// database and notifies ferry-qmgr.
static const Declaration kDeclaration{
    .user = "mail_user",
    .directories = {
        {.key = "spool_dir", .owner = Owner::mail_user, .mode = 0750},
        {.key = "spool_dir", .sub = spool::kIncoming, .owner = Owner::mail_user, .mode = 0750},
        {.key = "spool_dir", .sub = spool::kQueue, .owner = Owner::mail_user, .mode = 0750},
        {.key = "spool_dir", .sub = spool::kSpare, .owner = Owner::mail_user, .mode = 0750},
        {.key = "account_db", .parent_of_file = true, .owner = Owner::root, .mode = 0750},
        // The greylisting database's directory, its own: no other file of state_dir becomes writable.
        {.key = "greylist_db", .parent_of_file = true, .owner = Owner::mail_user, .mode = 0750, .adopt = true},
    },
    .sockets = {},
    .peers = {"qmgr_socket"},
};

int main(int argc, char** argv) {
    Options opt = start_program(argc, argv, "smtpd");
    // The key may be readable by root only: load it before dropping privileges.
    auto tls = tls_from_config(opt.config);
    if (!tls) {
        log::errorx("TLS: %s", tls.error().what().c_str());
        return EX_CONFIG;
    }
    if (auto r = smtpd::check_listeners(opt.config, tls->has_value()); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_CONFIG;
    }
    if (auto r = create_directories(kDeclaration, opt.config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    EventBase base(event_base_new());
    if (!base) log::panic("cannot create the event loop");
    smtpd::Server server(base.get(), opt.config, std::move(tls.value()));
    SignalEvents signals = install_signal_handlers(
        base.get(), [&server, b = base.get()] { server.stop([b] { event_base_loopbreak(b); }); });
    if (auto r = server.listen(); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    if (auto r = drop_privileges(kDeclaration, opt.config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    if (auto r = server.start(); !r) {  // starts the password workers: after the switch
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    log::info("ready");
    event_base_dispatch(base.get());
    log::info("stopped");
    return 0;
}
