// ferry-relay: wires the LMTP listener, the router (DNS), the connection cache and the SMTP client onto one event loop.
#include <sysexits.h>

#include "common/base/log.hpp"
#include "common/event/resolver.hpp"
#include "common/program/daemon.hpp"
#include "common/program/declaration.hpp"
#include "mta/relay/connection_cache.hpp"
#include "mta/relay/routing.hpp"
#include "mta/relay/server.hpp"
#include "mta/relay/settings.hpp"
#include "mta/relay/transfer.hpp"

using namespace ferry;

// ferry-relay(8), FILES: it binds relay_socket and keeps the data of messages in transfer in
// ${state_dir}/relay (unnamed files only).
static const Declaration kDeclaration{
    .user = "mail_user",
    .directories = {
        {.key = "state_dir", .sub = "relay", .owner = Owner::mail_user, .mode = 0700, .adopt = true},
        {.key = "relay_socket", .parent_of_file = true, .owner = Owner::root, .mode = 0755},
    },
    .sockets = {{.key = "relay_socket", .mode = 0660}},
    .peers = {},
};

int main(int argc, char** argv) {
    Options opt = start_program(argc, argv, "relay");
    const Config& config = opt.config;
    enter_batch_scheduling(config);
    if (auto r = create_directories(kDeclaration, config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    // Before privileges are dropped: the password file and the trust anchors may be root-only.
    auto settings = relay::relay_settings(config);
    if (!settings) {
        log::errorx("%s", settings.error().what().c_str());
        return EX_CONFIG;
    }
    EventBase base(event_base_new());
    if (!base) log::panic("cannot create the event loop");
    auto signals = install_signal_handlers(base.get());

    auto resolver = relay::make_resolver(base.get(), config);
    if (!resolver) {
        log::errorx("%s", resolver.error().what().c_str());
        return EX_CONFIG;
    }
    relay::Router router(config, **resolver);
    if (auto r = router.check(); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_CONFIG;
    }
    relay::ConnectionCache cache(base.get(), settings->reuse_time, settings->max_messages_per_connection);
    relay::RelayContext ctx{base.get(), *settings, router, cache};
    relay::RelayServer server(ctx, config);
    if (auto r = server.listen(); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    if (auto r = drop_privileges(kDeclaration, config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    log::info("ready");
    event_base_dispatch(base.get());
    log::info("stopped");
    return 0;
}
