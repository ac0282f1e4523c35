// route-query: routes domains with ferry-relay's Router on a real event loop and prints the destination.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "common/base/log.hpp"
#include "common/event/event.hpp"
#include "mta/relay/routing.hpp"

using namespace ferry;

namespace {

const char* kind_name(relay::Destination::Kind k) {
    switch (k) {
        case relay::Destination::Kind::ok: return "ok";
        case relay::Destination::Kind::temporary: return "temporary";
        default: return "permanent";
    }
}

// "kind=ok via_relayhost=no", then "target HOST ADDRESS PORT" lines, or "reply CODE ..." when not ok.
void print(const std::string& domain, const relay::Destination& d) {
    printf("domain %s\nkind=%s via_relayhost=%s\n", domain.c_str(), kind_name(d.kind), d.via_relayhost ? "yes" : "no");
    for (const auto& t : d.targets) printf("target %s %s %u\n", t.host.c_str(), t.address.c_str(), t.port);
    if (!d.reply.empty()) printf("reply %s\n", d.reply.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    std::string conf;
    int opt;
    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt != 'c') return 64;
        conf = optarg;
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: route-query [-c ferry.conf] DOMAIN...\n");
        return 64;
    }
    log::init("route-query", "stderr", "warning");
    auto config = conf.empty() ? Result<Config>(Config::defaults("relay")) : Config::load(conf, "relay");
    if (!config) return fprintf(stderr, "%s\n", config.error().what().c_str()), 78;
    EventBase base(event_base_new());
    auto resolver = relay::make_resolver(base.get(), *config);
    if (!resolver) return fprintf(stderr, "%s\n", resolver.error().what().c_str()), 78;
    relay::Router router(*config, **resolver);
    if (auto ok = router.check(); !ok) return fprintf(stderr, "%s\n", ok.error().what().c_str()), 78;
    int pending = argc - optind;
    for (int i = optind; i < argc; ++i) {
        std::string domain = argv[i];
        router.route(domain, [domain, &pending](relay::Destination d) {
            print(domain, d);
            --pending;
        });
    }
    while (pending > 0) event_base_loop(base.get(), EVLOOP_ONCE);
    fflush(stdout);
    return 0;
}
