// ferry-imapd: wires configuration, TLS, listeners, privileges, accounts and the IMAP server together.
#include <event2/event.h>
#include <sysexits.h>

#include "common/auth/accounts.hpp"
#include "common/auth/auth.hpp"
#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/program/declaration.hpp"
#include "common/store/index.hpp"
#include "common/event/tls.hpp"
#include "common/program/tls_config.hpp"
#include "imapd/server.hpp"

using namespace ferry;

// ferry-imapd(8), FILES: it reads and updates the Maildirs under mail_dir and reads the account database.
static const Declaration kDeclaration{
    .user = "mail_user",
    .directories = {
        {.key = "mail_dir", .owner = Owner::mail_user, .mode = 0700},
        {.key = "account_db", .parent_of_file = true, .owner = Owner::root, .mode = 0750},
    },
    .sockets = {},
    .peers = {},
};

int main(int argc, char** argv) {
    Options opt = start_program(argc, argv, "imapd");
    const Config& config = opt.config;
    // Tests stop a flag change or an expunge between its file and its index record (ferry-mailstore(5)).
    if (!config.str("test_pause_at").empty())
        store::set_pause_hook([&config](const char* point) { test_pause_point(config, point); });

    // The key and the ports may need root: load and bind first, then drop privileges.
    auto tls = tls_from_config(config);
    if (!tls) {
        log::errorx("TLS: %s", tls.error().what().c_str());
        return EX_CONFIG;
    }
    if (auto r = create_directories(kDeclaration, config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    auto listeners = imap::bind_listeners(config, tls->has_value());
    if (!listeners) {
        log::errorx("%s", listeners.error().what().c_str());
        return EX_TEMPFAIL;
    }
    if (auto r = drop_privileges(kDeclaration, config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }

    EventBase base(event_base_new());
    if (!base) log::panic("event_base_new failed");
    auto accounts = open_account_db(config);
    Authenticator auth(base.get(), *accounts, config);
    {
        imap::Server server(base.get(), config, std::move(tls.value()), auth);
        auto signals = install_signal_handlers(
            base.get(), [&server, b = base.get()] { server.stop([b] { event_base_loopbreak(b); }); });
        server.serve(std::move(listeners.value()));
        log::info("ready");
        event_base_dispatch(base.get());
    }
    log::info("stopped");
    return 0;
}
