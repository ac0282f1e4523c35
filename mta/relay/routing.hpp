// Where mail for a domain goes: transport map, relayhost, MX in preference order, A/AAAA fallback.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/event/resolver.hpp"
#include "common/program/config.hpp"

namespace ferry::relay {

// One place to try: a host name (for TLS verification, SNI and logs) and one of its addresses.
struct Target {
    std::string host;     // "mx1.example.org", or the literal for [192.0.2.1]
    std::string address;  // numeric
    uint16_t port = 25;
};

// The outcome for one destination domain. `permanent`: every recipient there fails for good (null
// MX, no such domain); `temporary`: try again later (DNS in doubt, no usable host).
struct Destination {
    enum class Kind { ok, temporary, permanent };
    Kind kind = Kind::temporary;
    std::vector<Target> targets;  // ok: in the order to try (MX preference, equals shuffled)
    std::string reply;            // not ok: the reply to give per recipient, e.g.
                                  // "556 5.1.10 Recipient address has null MX" or "451 4.4.3 ..."
    bool via_relayhost = false;   // the relayhost's credentials and TLS demands apply
};

class Router {
public:
    // Reads relayhost, the transport map and the DNS keys from `config`; `resolver` outlives it.
    Router(const Config& config, dns::Resolver& resolver);

    // `domain` is a recipient's domain, lower case; an address literal "[192.0.2.1]" goes there.
    // `done` runs once, later on the loop (see dns::Resolver).
    void route(const std::string& domain, std::function<void(Destination)> done);

private:
    const Config& config_;
    dns::Resolver& resolver_;
    std::mt19937 rng_;
};

}  // namespace ferry::relay
