// Router over a fake resolver: transport map, relayhost, MX order, fallbacks and the failure replies.
#include <catch.hpp>

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/auth/aliases.hpp"
#include "common/event/resolver_answer.hpp"
#include "common/mail/address.hpp"
#include "mta/relay/routing.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using dns::Status;
using relay::Destination;

namespace {

// Answers from tables; callbacks wait in a queue until run(), as the real one answers later on the loop.
class FakeResolver : public dns::Resolver {
public:
    std::map<std::string, dns::MxAnswer> mx_answers;
    std::map<std::string, dns::AddressAnswer> address_answers;
    std::vector<std::string> asked;  // "mx name" / "a name", in order

    void mx(const std::string& name, std::function<void(dns::MxAnswer)> done) override {
        asked.push_back("mx " + name);
        auto it = mx_answers.find(name);
        dns::MxAnswer a = it != mx_answers.end() ? it->second : dns::MxAnswer{Status::nxdomain, {}, "name does not exist (NXDOMAIN)"};
        queue_.push_back([done, a] { done(a); });
    }
    void addresses(const std::string& name, std::function<void(dns::AddressAnswer)> done) override {
        asked.push_back("a " + name);
        auto it = address_answers.find(name);
        dns::AddressAnswer a = it != address_answers.end() ? it->second : dns::AddressAnswer{Status::nxdomain, {}, "name does not exist (NXDOMAIN)"};
        if (auto n = dns::numeric_address(name); !n.empty()) a = dns::AddressAnswer{Status::ok, {n}, {}};
        queue_.push_back([done, a] { done(a); });
    }
    void run() {
        while (!queue_.empty()) {
            auto q = std::move(queue_);
            queue_.clear();
            for (auto& f : q) f();
        }
    }

private:
    std::vector<std::function<void()>> queue_;
};

dns::AddressAnswer addrs(std::vector<std::string> a) { return dns::AddressAnswer{Status::ok, std::move(a), {}}; }

struct Fixture {
    Config config = Config::defaults("relay");
    FakeResolver dns;

    Destination route(const std::string& domain) {
        relay::Router router(config, dns);
        REQUIRE(router.check().ok());
        std::optional<Destination> got;
        int calls = 0;
        router.route(domain, [&](Destination d) {
            ++calls;
            got = std::move(d);
        });
        CHECK_FALSE(got);  // never inside route()
        dns.run();
        REQUIRE(calls == 1);
        return *got;
    }
};

std::vector<std::string> hosts(const Destination& d) {
    std::vector<std::string> out;
    for (const auto& t : d.targets) out.push_back(t.host + "=" + t.address + ":" + std::to_string(t.port));
    return out;
}

}  // namespace

TEST_CASE("an address literal goes to that address, port 25, without DNS", "[routing]") {
    Fixture f;
    f.dns.mx_answers["x"] = {};
    auto d = f.route("[127.0.0.61]");
    REQUIRE(d.kind == Destination::Kind::ok);
    CHECK(hosts(d) == std::vector<std::string>{"127.0.0.61=127.0.0.61:25"});
    auto six = f.route("[IPv6:::1]");
    REQUIRE(six.kind == Destination::Kind::ok);
    CHECK(hosts(six) == std::vector<std::string>{"::1=::1:25"});
    for (const char* bad : {"[1.2.3]", "[ipv6:192.0.2.1]", "[::1]", "[mx.example]"}) {
        auto b = f.route(bad);
        INFO(bad);
        CHECK(b.kind == Destination::Kind::permanent);
        CHECK(b.reply.rfind("550 5.1.2 Bad address literal ", 0) == 0);
    }
    for (const auto& q : f.dns.asked) CHECK(q.rfind("mx ", 0) != 0);
}

TEST_CASE("an IPv6 literal routes in any case of tag and hex, as alias expansion lower-cases it", "[routing]") {
    Fixture f;
    // Alias expansion normalizes an outside address to lower case, literal and all: the tag is
    // case-insensitive (RFC 5234 2.3, RFC 5321 4.1.3), so both spellings must reach the same host.
    auto expanded = aliases::expand("Bob@[IPv6:2001:DB8::A]", [](const std::string&) -> Result<aliases::AddressInfo> {
        return aliases::AddressInfo{};
    }, aliases::Limits{});
    REQUIRE(expanded.ok());
    REQUIRE(*expanded == std::vector<std::string>{"bob@[ipv6:2001:db8::a]"});
    for (std::string literal : {domain_of(expanded->front()), std::string("[IPv6:2001:DB8::A]"),
                                std::string("[IPV6:2001:0DB8:0:0:0:0:0:a]"), std::string("[iPv6:2001:db8::A]")}) {
        INFO(literal);
        auto d = f.route(literal);
        REQUIRE(d.kind == Destination::Kind::ok);
        CHECK(hosts(d) == std::vector<std::string>{"2001:db8::a=2001:db8::a:25"});
    }
    // An IPv4-mapped address stays an IPv6 literal; an IPv4 address needs no tag.
    auto mapped = f.route("[ipv6:::FFFF:192.0.2.1]");
    REQUIRE(mapped.kind == Destination::Kind::ok);
    CHECK(hosts(mapped) == std::vector<std::string>{"::ffff:192.0.2.1=::ffff:192.0.2.1:25"});
    CHECK(f.route("[IPV6:192.0.2.1]").kind == Destination::Kind::permanent);
    for (const auto& q : f.dns.asked) CHECK(q.rfind("mx ", 0) != 0);
}

TEST_CASE("MX hosts are tried in preference order, each with its A and AAAA addresses", "[routing]") {
    Fixture f;
    f.dns.mx_answers["example.org"] = {Status::ok, {{20, "mx2.example.org"}, {10, "mx1.example.org"}}, {}};
    f.dns.address_answers["mx1.example.org"] = addrs({"192.0.2.1", "2001:db8::1"});
    f.dns.address_answers["mx2.example.org"] = addrs({"192.0.2.2"});
    auto d = f.route("example.org");
    REQUIRE(d.kind == Destination::Kind::ok);
    CHECK_FALSE(d.via_relayhost);
    CHECK(hosts(d) == std::vector<std::string>{"mx1.example.org=192.0.2.1:25", "mx1.example.org=2001:db8::1:25",
                                                "mx2.example.org=192.0.2.2:25"});
}

TEST_CASE("MX hosts of equal preference are shuffled", "[routing]") {
    Fixture f;
    f.dns.mx_answers["example.org"] = {Status::ok, {{10, "a.example.org"}, {10, "b.example.org"}, {10, "c.example.org"}, {5, "first.example.org"}}, {}};
    for (const char* h : {"a.example.org", "b.example.org", "c.example.org", "first.example.org"}) f.dns.address_answers[h] = addrs({"192.0.2.1"});
    std::set<std::string> orders;
    for (int i = 0; i < 60; ++i) {
        auto d = f.route("example.org");
        REQUIRE(d.targets.size() == 4);
        CHECK(d.targets[0].host == "first.example.org");
        orders.insert(d.targets[1].host + d.targets[2].host + d.targets[3].host);
    }
    CHECK(orders.size() > 1);
}

TEST_CASE("no MX record: the domain's own addresses (implicit MX)", "[routing]") {
    Fixture f;
    f.dns.mx_answers["fallback.test"] = {Status::nodata, {}, "no records of this type (NODATA)"};
    f.dns.address_answers["fallback.test"] = addrs({"127.0.0.62", "::1"});
    auto d = f.route("fallback.test");
    REQUIRE(d.kind == Destination::Kind::ok);
    CHECK(hosts(d) == std::vector<std::string>{"fallback.test=127.0.0.62:25", "fallback.test=::1:25"});

    f.dns.address_answers["fallback.test"] = {Status::nodata, {}, "no A or AAAA records (NODATA)"};
    auto none = f.route("fallback.test");
    CHECK(none.kind == Destination::Kind::permanent);
    CHECK(none.reply.rfind("550 5.4.4 Domain fallback.test has no MX and no A or AAAA record", 0) == 0);
}

TEST_CASE("NXDOMAIN, null MX and DNS trouble give replies naming the domain and the reason", "[routing]") {
    Fixture f;
    auto nx = f.route("gone.test");
    CHECK(nx.kind == Destination::Kind::permanent);
    CHECK(nx.reply.rfind("550 5.1.2 Domain gone.test not found", 0) == 0);
    CHECK(nx.reply.find("NXDOMAIN") != std::string::npos);

    f.dns.mx_answers["nullmx.test"] = {Status::ok, {{0, ""}}, {}};
    auto null = f.route("nullmx.test");
    CHECK(null.kind == Destination::Kind::permanent);
    CHECK(null.reply.rfind("556 5.1.10 Domain nullmx.test does not accept mail (null MX", 0) == 0);

    f.dns.mx_answers["slow.test"] = {Status::temporary, {}, "no answer from the DNS servers within 10s"};
    auto slow = f.route("slow.test");
    CHECK(slow.kind == Destination::Kind::temporary);
    CHECK(slow.reply == "451 4.4.3 Domain slow.test: DNS lookup failed temporarily (MX lookup: no answer from the DNS servers within 10s)");

    f.dns.mx_answers["bad.test"] = {Status::permanent, {}, "\"bad..test\" is not a valid domain name"};
    CHECK(f.route("bad.test").kind == Destination::Kind::permanent);
}

TEST_CASE("MX hosts that fail: skipped; none left is temporary when in doubt, permanent when all are missing", "[routing]") {
    Fixture f;
    f.dns.mx_answers["example.org"] = {Status::ok, {{10, "gone.example.org"}, {20, "slow.example.org"}, {30, "ok.example.org"}}, {}};
    f.dns.address_answers["slow.example.org"] = {Status::temporary, {}, "server failure (SERVFAIL)"};
    f.dns.address_answers["ok.example.org"] = addrs({"192.0.2.3"});
    auto d = f.route("example.org");
    REQUIRE(d.kind == Destination::Kind::ok);
    CHECK(hosts(d) == std::vector<std::string>{"ok.example.org=192.0.2.3:25"});

    f.dns.address_answers.erase("ok.example.org");
    auto doubt = f.route("example.org");
    CHECK(doubt.kind == Destination::Kind::temporary);
    CHECK(doubt.reply.rfind("451 4.4.3 Domain example.org: no MX host usable now (", 0) == 0);
    CHECK(doubt.reply.find("slow.example.org: server failure (SERVFAIL)") != std::string::npos);
    CHECK(doubt.reply.find("gone.example.org: name does not exist") != std::string::npos);

    f.dns.address_answers.erase("slow.example.org");
    auto gone = f.route("example.org");
    CHECK(gone.kind == Destination::Kind::permanent);
    CHECK(gone.reply.rfind("550 5.4.4 Domain example.org: no MX host has an address", 0) == 0);
}

TEST_CASE("a null MX beside real MX records is ignored", "[routing]") {
    Fixture f;
    f.dns.mx_answers["example.org"] = {Status::ok, {{0, ""}, {10, "mx.example.org"}}, {}};
    f.dns.address_answers["mx.example.org"] = addrs({"192.0.2.1"});
    auto d = f.route("example.org");
    REQUIRE(d.kind == Destination::Kind::ok);
    CHECK(hosts(d) == std::vector<std::string>{"mx.example.org=192.0.2.1:25"});
}

TEST_CASE("relay_max_mx_hosts caps the targets", "[routing]") {
    Fixture f;
    REQUIRE(f.config.set("relay_max_mx_hosts", "2").ok());
    f.dns.mx_answers["example.org"] = {Status::ok, {{10, "a.example.org"}, {20, "b.example.org"}, {30, "c.example.org"}}, {}};
    f.dns.address_answers["a.example.org"] = addrs({"192.0.2.1", "192.0.2.11", "192.0.2.111"});
    f.dns.address_answers["b.example.org"] = addrs({"192.0.2.2"});
    f.dns.address_answers["c.example.org"] = addrs({"192.0.2.3"});
    auto d = f.route("example.org");
    CHECK(hosts(d) == std::vector<std::string>{"a.example.org=192.0.2.1:25", "a.example.org=192.0.2.11:25"});
    for (const auto& q : f.dns.asked) CHECK(q != "a c.example.org");
}

TEST_CASE("relayhost takes every domain; bracketed means no MX lookup", "[routing]") {
    Fixture f;
    REQUIRE(f.config.set("relayhost", "[smtp.provider.example]:587").ok());
    f.dns.address_answers["smtp.provider.example"] = addrs({"198.51.100.1"});
    auto d = f.route("example.org");
    REQUIRE(d.kind == Destination::Kind::ok);
    CHECK(d.via_relayhost);
    CHECK(hosts(d) == std::vector<std::string>{"smtp.provider.example=198.51.100.1:587"});
    CHECK(f.dns.asked == std::vector<std::string>{"a smtp.provider.example"});

    // A relayhost that does not resolve is our configuration's fault: deferred, never bounced.
    f.dns.address_answers.clear();
    auto broken = f.route("example.org");
    CHECK(broken.kind == Destination::Kind::temporary);
    CHECK(broken.reply.rfind("451 4.4.4 Next hop smtp.provider.example for example.org not found", 0) == 0);
    CHECK(broken.reply.find("relayhost") != std::string::npos);
}

TEST_CASE("relayhost without brackets is looked up by MX", "[routing]") {
    Fixture f;
    REQUIRE(f.config.set("relayhost", "provider.example:2525").ok());
    f.dns.mx_answers["provider.example"] = {Status::ok, {{10, "in.provider.example"}}, {}};
    f.dns.address_answers["in.provider.example"] = addrs({"198.51.100.2"});
    auto d = f.route("example.org");
    CHECK(d.via_relayhost);
    CHECK(hosts(d) == std::vector<std::string>{"in.provider.example=198.51.100.2:2525"});
}

TEST_CASE("the transport map: exact entry, then .parent entries, before relayhost", "[routing]") {
    test::TempDir dir;
    std::string map = dir.path + "/transport";
    std::ofstream(map) << "# peers on high ports\n"
                          "example.org      [127.0.0.61]:2525\n"
                          ".example.org     [127.0.0.62]:2526\n"
                          "sub.example.org  smtp:[mx.sub.example]\n"
                          "\n"
                          "  mxrouted.test  gateway.test:26\n";
    Fixture f;
    REQUIRE(f.config.set("relay_transport_map", map).ok());
    REQUIRE(f.config.set("relayhost", "[relay.example]").ok());
    f.dns.address_answers["mx.sub.example"] = addrs({"192.0.2.5"});
    f.dns.address_answers["relay.example"] = addrs({"192.0.2.99"});
    f.dns.mx_answers["gateway.test"] = {Status::ok, {{1, "gw.test"}}, {}};
    f.dns.address_answers["gw.test"] = addrs({"192.0.2.26"});

    auto exact = f.route("example.org");
    CHECK(hosts(exact) == std::vector<std::string>{"127.0.0.61=127.0.0.61:2525"});
    CHECK_FALSE(exact.via_relayhost);
    CHECK(hosts(f.route("deep.a.example.org")) == std::vector<std::string>{"127.0.0.62=127.0.0.62:2526"});
    CHECK(hosts(f.route("sub.example.org")) == std::vector<std::string>{"mx.sub.example=192.0.2.5:25"});
    CHECK(hosts(f.route("mxrouted.test")) == std::vector<std::string>{"gw.test=192.0.2.26:26"});
    auto other = f.route("notexample.org");
    CHECK(other.via_relayhost);
    CHECK(hosts(other) == std::vector<std::string>{"relay.example=192.0.2.99:25"});
}

TEST_CASE("next hops are parsed as Postfix writes them", "[routing]") {
    auto h = relay::parse_next_hop("[Smtp.Example]:587");
    REQUIRE(h.ok());
    CHECK(h->host == "smtp.example");
    CHECK(h->port == 587);
    CHECK_FALSE(h->mx);
    auto m = relay::parse_next_hop("mail.example");
    REQUIRE(m.ok());
    CHECK(m->mx);
    CHECK(m->port == 25);
    auto v6 = relay::parse_next_hop("[2001:db8::5]:26");
    REQUIRE(v6.ok());
    CHECK(v6->host == "2001:db8::5");
    CHECK(v6->port == 26);
    auto bare = relay::parse_next_hop("192.0.2.1:26");
    REQUIRE(bare.ok());
    CHECK_FALSE(bare->mx);
    for (const char* bad : {"", "[x.example", "[x.example]x", "x.example:", "x.example:0", "x.example:70000",
                            "x.example:2a", "bad name", "lmtp:[x.example]", "[]:25"}) {
        INFO(bad);
        CHECK_FALSE(relay::parse_next_hop(bad).ok());
    }
}

TEST_CASE("a bad transport map line is a start-up error naming file and line", "[routing]") {
    auto ok = relay::parse_transport_map("a.example [h.example]\n", "t");
    REQUIRE(ok.ok());
    auto one = relay::parse_transport_map("# c\na.example [h.example]\nb.example\n", "/etc/ferry/transport");
    REQUIRE_FALSE(one.ok());
    CHECK(one.error().text.rfind("/etc/ferry/transport:3: ", 0) == 0);
    auto port = relay::parse_transport_map("a.example  [h.example]:99999\n", "t");
    REQUIRE_FALSE(port.ok());
    CHECK(port.error().text.find("t:1: bad next hop") == 0);
    CHECK_FALSE(relay::parse_transport_map("a.example h\nA.example. h2\n", "t").ok());
    CHECK_FALSE(relay::parse_transport_map("bad..domain h\n", "t").ok());

    test::TempDir dir;
    std::ofstream(dir.path + "/bad") << "example.org [x.example\n";
    Config config = Config::defaults("relay");
    REQUIRE(config.set("relay_transport_map", dir.path + "/bad").ok());
    FakeResolver dns;
    relay::Router router(config, dns);
    REQUIRE_FALSE(router.check().ok());
    CHECK(router.check().error().text.find(dir.path + "/bad:1: ") == 0);

    REQUIRE(config.set("relay_transport_map", dir.path + "/missing").ok());
    relay::Router missing(config, dns);
    REQUIRE_FALSE(missing.check().ok());
    CHECK(missing.check().error().text.find("missing") != std::string::npos);

    Config rh = Config::defaults("relay");
    REQUIRE(rh.set("relayhost", "[x.example]:0").ok());
    relay::Router bad_relayhost(rh, dns);
    REQUIRE_FALSE(bad_relayhost.check().ok());
    CHECK(bad_relayhost.check().error().text.rfind("relayhost: ", 0) == 0);
}

TEST_CASE("a Router gone before the answer: the callback still runs once", "[routing]") {
    Config config = Config::defaults("relay");
    FakeResolver dns;
    dns.mx_answers["example.org"] = {Status::ok, {{10, "mx.example.org"}}, {}};
    dns.address_answers["mx.example.org"] = addrs({"192.0.2.1"});
    int calls = 0;
    {
        relay::Router router(config, dns);
        router.route("example.org", [&](Destination d) {
            ++calls;
            CHECK(d.kind == Destination::Kind::ok);
        });
    }
    dns.run();
    CHECK(calls == 1);
}
