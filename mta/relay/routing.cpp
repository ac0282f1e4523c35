// Where mail for a domain goes: transport map, relayhost, then MX records, A/AAAA fallback and null MX.
#include "mta/relay/routing.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include "common/base/log.hpp"
#include "common/event/resolver_answer.hpp"
#include "common/event/resolver_cache.hpp"

namespace ferry::relay {

using dns::Status;

// Reply codes, as Postfix chooses its enhanced codes (RFC 3463, RFC 7505):
//   550 5.1.2   the recipient's domain does not exist (NXDOMAIN) or is not a domain name
//   556 5.1.10  the domain has a null MX: it accepts no mail
//   550 5.4.4   the domain exists but no host to deliver to has an address
//   451 4.4.3   DNS in doubt: timeout, SERVFAIL, malformed answer, CNAME loop
//   451 4.4.4   a next hop from relayhost or the transport map does not resolve: a local
//               configuration error that must not bounce mail
struct Router::Shared {
    std::mt19937 rng{std::random_device{}()};
    size_t max_targets = 5;
};

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

Error hop_error(std::string_view value, const std::string& why) {
    return make_error(0, "", "bad next hop \"" + std::string(value) + "\": " + why);
}

// What one route() is about: the recipient domain and, for a configured next hop, where it came from.
struct Ctx {
    std::string domain;
    std::string via;  // "" for the domain's own MX; else "relayhost" or "the transport map"
    bool via_relayhost = false;
    dns::Resolver* resolver = nullptr;
    std::shared_ptr<Router::Shared> shared;
    std::function<void(Destination)> done;
};

Destination fail(const Ctx& c, bool permanent, std::string code, std::string text) {
    Destination d;
    d.via_relayhost = c.via_relayhost;
    if (!c.via.empty()) {
        // The next hop is our own configuration: a mistake there defers, it never bounces.
        d.kind = Destination::Kind::temporary;
        d.reply = (permanent ? "451 4.4.4 " : code + " ") + text + " (next hop from " + c.via + ")";
        return d;
    }
    d.kind = permanent ? Destination::Kind::permanent : Destination::Kind::temporary;
    d.reply = code + " " + text;
    return d;
}

// Failure of the MX lookup of `host` (the domain or a configured next hop).
Destination mx_failure(const Ctx& c, const std::string& host, const dns::MxAnswer& a) {
    std::string what = c.via.empty() ? "Domain " + c.domain : "Next hop " + host + " for " + c.domain;
    switch (a.status) {
        case Status::nxdomain: return fail(c, true, "550 5.1.2", what + " not found (MX lookup: " + a.error + ")");
        case Status::permanent: return fail(c, true, "550 5.1.2", what + " is not a valid domain name (" + a.error + ")");
        default: return fail(c, false, "451 4.4.3", what + ": DNS lookup failed temporarily (MX lookup: " + a.error + ")");
    }
}

void add_targets(std::vector<Target>& out, const std::string& host, const std::vector<std::string>& addresses,
                 uint16_t port, size_t cap) {
    for (const auto& a : addresses) {
        if (out.size() >= cap) return;
        out.push_back(Target{host, a, port});
    }
}

Destination success(const Ctx& c, std::vector<Target> targets) {
    Destination d;
    d.kind = Destination::Kind::ok;
    d.targets = std::move(targets);
    d.via_relayhost = c.via_relayhost;
    return d;
}

// The addresses of `host` itself: a bracketed next hop, or the implicit MX when a domain has no MX.
void resolve_host(std::shared_ptr<Ctx> c, const std::string& host, uint16_t port, bool implicit_mx) {
    c->resolver->addresses(host, [c, host, port, implicit_mx](dns::AddressAnswer a) {
        std::string what = c->via.empty() ? "Domain " + c->domain : "Next hop " + host + " for " + c->domain;
        if (a.status == Status::ok && !a.addresses.empty()) {
            std::vector<Target> t;
            add_targets(t, host, a.addresses, port, c->shared->max_targets);
            return c->done(success(*c, std::move(t)));
        }
        if (a.status == Status::temporary)
            return c->done(fail(*c, false, "451 4.4.3", what + ": DNS lookup failed temporarily (address lookup: " + a.error + ")"));
        if (a.status == Status::nxdomain)
            return c->done(fail(*c, true, "550 5.1.2", what + " not found (address lookup: " + a.error + ")"));
        if (a.status == Status::permanent)
            return c->done(fail(*c, true, "550 5.1.2", what + " is not a valid domain name (" + a.error + ")"));
        return c->done(fail(*c, true, "550 5.4.4", what + (implicit_mx ? " has no MX and no A or AAAA record" : " has no A or AAAA record")));
    });
}

// MX records in preference order, equal preferences shuffled (RFC 5321 5.1).
std::vector<dns::Mx> order_mx(std::vector<dns::Mx> mx, std::mt19937& rng) {
    std::shuffle(mx.begin(), mx.end(), rng);
    std::stable_sort(mx.begin(), mx.end(), [](const dns::Mx& a, const dns::Mx& b) { return a.preference < b.preference; });
    return mx;
}

// Every exchange's addresses, then the targets in MX order; the reasons for the ones that failed.
void resolve_exchanges(std::shared_ptr<Ctx> c, std::vector<dns::Mx> mx, uint16_t port) {
    struct Gather {
        std::vector<dns::Mx> mx;
        std::vector<dns::AddressAnswer> answers;
        size_t pending;
    };
    auto g = std::make_shared<Gather>(Gather{std::move(mx), {}, 0});
    g->answers.resize(g->mx.size());
    g->pending = g->mx.size();
    for (size_t i = 0; i < g->mx.size(); ++i) {
        c->resolver->addresses(g->mx[i].exchange, [c, g, i, port](dns::AddressAnswer a) {
            g->answers[i] = std::move(a);
            if (--g->pending > 0) return;
            std::vector<Target> targets;
            std::string reasons;
            bool in_doubt = false;
            for (size_t k = 0; k < g->mx.size(); ++k) {
                const auto& ans = g->answers[k];
                add_targets(targets, g->mx[k].exchange, ans.addresses, port, c->shared->max_targets);
                if (ans.status == Status::ok) continue;
                in_doubt |= ans.status == Status::temporary;
                reasons += (reasons.empty() ? "" : "; ") + g->mx[k].exchange + ": " + ans.error;
                log::info("route %s: MX host %s: %s", c->domain.c_str(), g->mx[k].exchange.c_str(), ans.error.c_str());
            }
            if (!targets.empty()) return c->done(success(*c, std::move(targets)));
            std::string what = c->via.empty() ? "Domain " + c->domain : "Next hop for " + c->domain;
            if (in_doubt)
                return c->done(fail(*c, false, "451 4.4.3", what + ": no MX host usable now (" + reasons + ")"));
            c->done(fail(*c, true, "550 5.4.4", what + ": no MX host has an address (" + reasons + ")"));
        });
    }
}

// MX lookup of `host`, then its exchanges; NODATA falls back to host's own addresses (RFC 5321 5.1).
void resolve_mx(std::shared_ptr<Ctx> c, const std::string& host, uint16_t port) {
    c->resolver->mx(host, [c, host, port](dns::MxAnswer a) {
        if (a.status == Status::nodata) return resolve_host(c, host, port, true);
        if (a.status != Status::ok) return c->done(mx_failure(*c, host, a));
        std::vector<dns::Mx> usable;
        for (auto& m : a.records)
            if (!m.exchange.empty()) usable.push_back(std::move(m));
        std::string what = c->via.empty() ? "Domain " + c->domain : "Next hop " + host + " for " + c->domain;
        if (usable.empty())
            return c->done(fail(*c, true, "556 5.1.10", what + " does not accept mail (null MX, RFC 7505)"));
        usable = order_mx(std::move(usable), c->shared->rng);
        if (usable.size() > c->shared->max_targets) usable.resize(c->shared->max_targets);
        resolve_exchanges(c, std::move(usable), port);
    });
}

}  // namespace

Result<NextHop> parse_next_hop(std::string_view value) {
    std::string_view v = trim(value);
    if (v.substr(0, 5) == "smtp:") v.remove_prefix(5);
    NextHop hop;
    std::string_view host = v, port;
    bool has_port = false;
    if (!v.empty() && v.front() == '[') {
        auto close = v.find(']');
        if (close == std::string_view::npos) return hop_error(value, "missing ']'");
        host = v.substr(1, close - 1);
        std::string_view rest = v.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') return hop_error(value, "text after ']'");
        has_port = !rest.empty();
        if (has_port) port = rest.substr(1);
        hop.mx = false;
    } else if (auto colon = v.find(':'); colon != std::string_view::npos) {
        host = v.substr(0, colon);
        port = v.substr(colon + 1);
        has_port = true;
    }
    if (host.empty()) return hop_error(value, "no host");
    if (has_port) {
        unsigned n = 0;
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
        if (port.empty() || ec != std::errc() || p != port.data() + port.size() || n == 0 || n > 65535)
            return hop_error(value, "bad port");
        hop.port = static_cast<uint16_t>(n);
    }
    hop.host = dns::normalize_name(host);
    if (auto numeric = dns::numeric_address(hop.host); !numeric.empty()) {
        hop.host = numeric;
        hop.mx = false;  // an address has no MX records
    } else if (!dns::valid_query_name(hop.host)) {
        return hop_error(value, "not a host name or address");
    }
    return hop;
}

Result<TransportMap> parse_transport_map(std::string_view text, const std::string& file) {
    TransportMap map;
    std::istringstream in{std::string(text)};
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        std::string_view l = trim(line);
        if (l.empty() || l.front() == '#') continue;
        auto where = file + ":" + std::to_string(n);
        auto sp = l.find_first_of(" \t");
        if (sp == std::string_view::npos) return make_error(0, "", where + ": expected \"domain  next-hop\"");
        std::string key = dns::normalize_name(l.substr(0, sp));
        std::string_view bare = key.size() > 1 && key.front() == '.' ? std::string_view(key).substr(1) : std::string_view(key);
        if (!dns::valid_query_name(bare)) return make_error(0, "", where + ": \"" + key + "\" is not a domain");
        auto hop = parse_next_hop(l.substr(sp + 1));
        if (!hop) return make_error(0, "", where + ": " + hop.error().text);
        if (!map.emplace(key, *hop).second) return make_error(0, "", where + ": " + key + " is listed twice");
    }
    return map;
}

Result<TransportMap> load_transport_map(const std::string& path) {
    std::ifstream f(path);
    if (!f) return make_error(0, "", "relay_transport_map: cannot read " + path, std::strerror(errno));
    std::stringstream ss;
    ss << f.rdbuf();
    return parse_transport_map(ss.str(), path);
}

Result<std::unique_ptr<dns::Resolver>> make_resolver(event_base* base, const Config& config) {
    auto r = dns::make_resolver(base, config.str("dns_servers"), static_cast<double>(config.duration("dns_timeout").count()));
    if (!r) return r.error();
    return dns::with_cache(base, std::move(r.value()), dns::dns_cache_limits(config));
}

Router::Router(const Config& config, dns::Resolver& resolver) : resolver_(resolver), shared_(std::make_shared<Shared>()) {
    int64_t max = config.integer("relay_max_mx_hosts");
    if (max < 1) config_error_ = make_error(0, "", "relay_max_mx_hosts must be at least 1");
    shared_->max_targets = static_cast<size_t>(std::max<int64_t>(1, max));
    if (auto rh = config.str("relayhost"); !rh.empty()) {
        auto hop = parse_next_hop(rh);
        if (hop) relayhost_ = *hop;
        else config_error_ = make_error(0, "", "relayhost: " + hop.error().text);
    }
    if (auto path = config.str("relay_transport_map"); !path.empty()) {
        auto map = load_transport_map(path);
        if (map) transport_ = std::move(*map);
        else if (!config_error_) config_error_ = map.error();
    }
}

Router::~Router() = default;

Result<void> Router::check() const {
    if (config_error_) return *config_error_;
    return {};
}

std::optional<NextHop> Router::transport_for(std::string_view domain) const {
    if (auto it = transport_.find(domain); it != transport_.end()) return it->second;
    for (auto dot = domain.find('.'); dot != std::string_view::npos; dot = domain.find('.', dot + 1))
        if (auto it = transport_.find(domain.substr(dot)); it != transport_.end()) return it->second;
    return std::nullopt;
}

void Router::route(const std::string& domain_in, std::function<void(Destination)> done) {
    std::string domain = dns::normalize_name(domain_in);
    if (!domain.empty() && domain.front() == '[') return route_literal(domain, std::move(done));
    auto c = std::make_shared<Ctx>(Ctx{domain, "", false, &resolver_, shared_, std::move(done)});
    NextHop hop{domain, 25, true};
    if (auto t = transport_for(domain)) {
        hop = *t;
        c->via = "the transport map";
    } else if (relayhost_) {
        hop = *relayhost_;
        c->via = "relayhost";
        c->via_relayhost = true;
    }
    if (hop.mx) resolve_mx(c, hop.host, hop.port);
    else resolve_host(c, hop.host, hop.port, false);
}

// "[192.0.2.1]" or "[ipv6:2001:db8::1]": that address, port 25 (RFC 5321 4.1.3).
void Router::route_literal(const std::string& domain, std::function<void(Destination)> done) {
    std::string inner = domain.back() == ']' ? domain.substr(1, domain.size() - 2) : std::string();
    if (inner.rfind("ipv6:", 0) == 0) inner = inner.substr(5);
    std::string address = dns::numeric_address(inner);
    bool v6_tagged = domain.rfind("[ipv6:", 0) == 0;
    if (address.empty() || v6_tagged != (address.find(':') != std::string::npos)) {
        // The resolver only defers the answer here: a bracketed name is never a valid query.
        resolver_.addresses(domain, [done = std::move(done), domain](dns::AddressAnswer) {
            Destination d;
            d.kind = Destination::Kind::permanent;
            d.reply = "550 5.1.2 Bad address literal " + domain;
            done(std::move(d));
        });
        return;
    }
    resolver_.addresses(address, [done = std::move(done), domain, address](dns::AddressAnswer) {
        Destination d;
        d.kind = Destination::Kind::ok;
        d.targets.push_back(Target{address, address, 25});
        done(std::move(d));
    });
}

}  // namespace ferry::relay
