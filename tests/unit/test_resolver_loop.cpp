// The c-ares resolver on a real event loop against a scripted UDP DNS server on 127.0.0.1.
#include <catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/base/fd.hpp"
#include "common/event/event.hpp"
#include "common/event/resolver.hpp"
#include "tests/unit/test_resolver_packet.hpp"

using namespace ferry;
using dns::Status;
using test::DnsPacket;

namespace {

// Answers each query with what `answer(qname, qtype)` builds; silent when it returns "".
struct ScriptedDns {
    Fd sock;
    EventPtr ev;
    uint16_t port = 0;
    std::vector<std::string> asked;  // "qname/qtype"
    std::function<std::string(const std::string&, int)> answer;

    explicit ScriptedDns(event_base* base) : sock(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)) {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(bind(sock.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        socklen_t len = sizeof sa;
        getsockname(sock.get(), reinterpret_cast<sockaddr*>(&sa), &len);
        port = ntohs(sa.sin_port);
        ev.reset(event_new(base, sock.get(), EV_READ | EV_PERSIST, &ScriptedDns::on_read, this));
        event_add(ev.get(), nullptr);
    }

    std::string servers() const { return "127.0.0.1:" + std::to_string(port); }

    static void on_read(evutil_socket_t fd, short, void* arg) noexcept {
        auto* self = static_cast<ScriptedDns*>(arg);
        unsigned char buf[512];
        sockaddr_storage from{};
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n < 17) return;
        std::string name;
        size_t off = 12;
        while (off < static_cast<size_t>(n) && buf[off] != 0) {
            if (!name.empty()) name += '.';
            name.append(reinterpret_cast<char*>(buf + off + 1), buf[off]);
            off += buf[off] + 1u;
        }
        int qtype = buf[off + 1] << 8 | buf[off + 2];
        self->asked.push_back(name + "/" + std::to_string(qtype));
        std::string reply = self->answer(name, qtype);
        if (reply.empty()) return;
        reply[0] = static_cast<char>(buf[0]);
        reply[1] = static_cast<char>(buf[1]);
        sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
};

void run_until(event_base* base, const std::function<bool()>& done, double seconds = 10) {
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!done() && std::chrono::steady_clock::now() < end) event_base_loop(base, EVLOOP_ONCE);
}

struct Loop {
    EventBase base{event_base_new()};
    ScriptedDns server{base.get()};
    std::unique_ptr<dns::Resolver> make(double timeout = 5) {
        auto r = dns::make_resolver(base.get(), server.servers(), timeout);
        REQUIRE(r.ok());
        return std::move(r.value());
    }
};

}  // namespace

TEST_CASE("an MX lookup over the loop; a CNAME-only answer makes the resolver ask for the target", "[dns]") {
    Loop l;
    l.server.answer = [](const std::string& name, int type) -> std::string {
        if (name == "alias.test" && type == DnsPacket::MX) return DnsPacket(name, type).cname(name, "real.test").bytes;
        if (name == "real.test" && type == DnsPacket::MX) return DnsPacket(name, type).mx(name, 10, "mx.real.test").bytes;
        return DnsPacket(name, type, 3).bytes;
    };
    auto r = l.make();
    std::optional<dns::MxAnswer> got;
    r->mx("Alias.Test", [&](dns::MxAnswer a) { got = std::move(a); });
    CHECK_FALSE(got);
    run_until(l.base.get(), [&] { return got.has_value(); });
    REQUIRE(got);
    REQUIRE(got->status == Status::ok);
    REQUIRE(got->records.size() == 1);
    CHECK(got->records[0].exchange == "mx.real.test");
    CHECK(l.server.asked == std::vector<std::string>{"alias.test/15", "real.test/15"});
}

TEST_CASE("a CNAME loop across queries is a temporary failure", "[dns]") {
    Loop l;
    l.server.answer = [](const std::string& name, int type) -> std::string {
        return DnsPacket(name, type).cname(name, name == "a.test" ? "b.test" : "a.test").bytes;
    };
    auto r = l.make();
    std::optional<dns::AddressAnswer> got;
    r->addresses("a.test", [&](dns::AddressAnswer a) { got = std::move(a); });
    run_until(l.base.get(), [&] { return got.has_value(); });
    REQUIRE(got);
    CHECK(got->status == Status::temporary);
    CHECK(got->error.find("CNAME loop") != std::string::npos);
}

TEST_CASE("A and AAAA together, A first; NXDOMAIN and SERVFAIL come through c-ares", "[dns]") {
    Loop l;
    l.server.answer = [](const std::string& name, int type) -> std::string {
        if (name == "h.test" && type == DnsPacket::A) return DnsPacket(name, type).a(name, "192.0.2.1").bytes;
        if (name == "h.test" && type == DnsPacket::AAAA) return DnsPacket(name, type).aaaa(name, "2001:db8::1").bytes;
        if (name == "v6.test" && type == DnsPacket::AAAA) return DnsPacket(name, type).aaaa(name, "::1").bytes;
        if (name == "broken.test") return DnsPacket(name, type, 2).bytes;
        if (name == "v6.test") return DnsPacket(name, type).bytes;
        return DnsPacket(name, type, 3).bytes;
    };
    auto r = l.make();
    std::vector<dns::AddressAnswer> got(3);
    int n = 0;
    r->addresses("h.test", [&](dns::AddressAnswer a) { got[0] = std::move(a); ++n; });
    r->addresses("v6.test", [&](dns::AddressAnswer a) { got[1] = std::move(a); ++n; });
    r->addresses("gone.test", [&](dns::AddressAnswer a) { got[2] = std::move(a); ++n; });
    std::optional<dns::MxAnswer> broken;
    r->mx("broken.test", [&](dns::MxAnswer a) { broken = std::move(a); });
    run_until(l.base.get(), [&] { return n == 3 && broken; });
    REQUIRE(n == 3);
    CHECK(got[0].status == Status::ok);
    CHECK(got[0].addresses == std::vector<std::string>{"192.0.2.1", "2001:db8::1"});
    CHECK(got[1].addresses == std::vector<std::string>{"::1"});
    CHECK(got[2].status == Status::nxdomain);
    REQUIRE(broken);
    CHECK(broken->status == Status::temporary);
}

TEST_CASE("a server that never answers: temporary within dns_timeout", "[dns]") {
    Loop l;
    l.server.answer = [](const std::string&, int) { return std::string(); };
    auto r = l.make(1);
    std::optional<dns::MxAnswer> got;
    auto start = std::chrono::steady_clock::now();
    r->mx("silent.test", [&](dns::MxAnswer a) { got = std::move(a); });
    run_until(l.base.get(), [&] { return got.has_value(); });
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    REQUIRE(got);
    CHECK(got->status == Status::temporary);
    CHECK(got->error == "no answer from the DNS servers within 1s");
    CHECK(took >= 0.9);
    CHECK(took < 2.5);
    CHECK_FALSE(l.server.asked.empty());
}

TEST_CASE("callbacks run later on the loop, also for a literal, a bad name and a destroyed resolver", "[dns]") {
    Loop l;
    l.server.answer = [](const std::string&, int) { return std::string(); };
    auto r = l.make();
    std::optional<dns::AddressAnswer> literal, bad, pending;
    r->addresses("192.0.2.1", [&](dns::AddressAnswer a) { literal = std::move(a); });
    r->addresses("bad..name", [&](dns::AddressAnswer a) { bad = std::move(a); });
    int pending_calls = 0;
    r->addresses("never.test", [&](dns::AddressAnswer a) { pending = std::move(a); ++pending_calls; });
    CHECK_FALSE(literal);
    CHECK_FALSE(bad);
    run_until(l.base.get(), [&] { return literal && bad; });
    REQUIRE(literal);
    CHECK(literal->status == Status::ok);
    CHECK(literal->addresses == std::vector<std::string>{"192.0.2.1"});
    REQUIRE(bad);
    CHECK(bad->status == Status::permanent);

    r.reset();
    CHECK_FALSE(pending);
    run_until(l.base.get(), [&] { return pending.has_value(); }, 2);
    REQUIRE(pending);
    CHECK(pending->status == Status::temporary);
    CHECK(pending->error == "resolver stopped");
    event_base_loop(l.base.get(), EVLOOP_NONBLOCK);
    CHECK(pending_calls == 1);
}

TEST_CASE("dns_servers: commas, spaces, ports and IPv6 in brackets; nonsense is refused", "[dns]") {
    EventBase base(event_base_new());
    CHECK(dns::make_resolver(base.get(), "127.0.0.53:5353, [::1]:53 127.0.0.1", 5).ok());
    CHECK(dns::make_resolver(base.get(), "", 5).ok());
    CHECK_FALSE(dns::make_resolver(base.get(), "not-an-address", 5).ok());
    CHECK_FALSE(dns::make_resolver(base.get(), "127.0.0.1", 0).ok());
}

TEST_CASE("a lookup's TTL is the smallest along the CNAME chain across queries", "[dns][dns_cache]") {
    Loop l;
    l.server.answer = [](const std::string& name, int type) -> std::string {
        if (name == "alias.test") return DnsPacket(name, type).cname(name, "real.test", 60).bytes;
        return DnsPacket(name, type).txt(name, "v=spf1 -all", 900).bytes;
    };
    auto r = l.make();
    std::optional<dns::TextAnswer> got;
    r->txt("alias.test", [&](dns::TextAnswer a) { got = std::move(a); });
    run_until(l.base.get(), [&] { return got.has_value(); });
    REQUIRE(got);
    REQUIRE(got->status == Status::ok);
    CHECK(got->ttl == 60);
}
