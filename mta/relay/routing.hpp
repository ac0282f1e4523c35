// Where mail for a domain goes: transport map, relayhost, MX in preference order, A/AAAA fallback.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
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

// A next hop as Postfix writes it: "[host]:port" or "[192.0.2.1]" (no MX lookup), "host" or
// "host:port" (MX lookup of host); an optional "smtp:" in front is accepted.
struct NextHop {
    std::string host;  // lower case, without brackets
    uint16_t port = 25;
    bool mx = true;    // false for the bracketed form
};
Result<NextHop> parse_next_hop(std::string_view value);

// relay_transport_map: lines "domain  next-hop", '#' comments; ".example.org" matches subdomains.
using TransportMap = std::map<std::string, NextHop, std::less<>>;
Result<TransportMap> parse_transport_map(std::string_view text, const std::string& file);
Result<TransportMap> load_transport_map(const std::string& path);

// The c-ares resolver on `base` from the dns_servers and dns_timeout keys.
Result<std::unique_ptr<dns::Resolver>> make_resolver(event_base* base, const Config& config);

class Router {
public:
    // Reads relayhost, the transport map and the DNS keys from `config`; `resolver` outlives it.
    Router(const Config& config, dns::Resolver& resolver);
    ~Router();

    // The start-up check: a bad relayhost or a bad transport map line (named by file and line).
    Result<void> check() const;

    // `domain` is a recipient's domain, lower case; an address literal "[192.0.2.1]" goes there.
    // `done` runs once, later on the loop (see dns::Resolver).
    void route(const std::string& domain, std::function<void(Destination)> done);

    // The next hop for `domain` from the transport map (exact, then ".parent" entries), if any.
    std::optional<NextHop> transport_for(std::string_view domain) const;

    struct Shared;  // what pending lookups need after the Router is gone

private:
    void route_literal(const std::string& domain, std::function<void(Destination)> done);

    dns::Resolver& resolver_;
    std::optional<NextHop> relayhost_;
    TransportMap transport_;
    std::optional<Error> config_error_;
    std::shared_ptr<Shared> shared_;
};

}  // namespace ferry::relay
