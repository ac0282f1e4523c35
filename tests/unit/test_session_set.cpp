// SessionSet on loopback: per-address and total limits hit exactly, release, lifetime, graceful stop;
// RequestDeadline's allowance and its timer.
#include <catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/event/deadline.hpp"
#include "common/event/event.hpp"
#include "common/event/net.hpp"
#include "common/event/session_set.hpp"

using namespace ferry;

namespace {

struct Fixture;

// A session that only records what the set asks of it.
struct Probe final : ServedSession {
    Fixture& fx;
    Fd fd;
    std::string address, id;
    bool ignore_stop = false;
    Probe(Fixture& f, SessionSet::Accepted& a) : fx(f), fd(std::move(a.fd)), address(a.address), id(a.id) {}
    ~Probe() override;
    void on_lifetime_expired() override;
    void on_stop() override;
};

struct Fixture {
    EventBase base{event_base_new()};
    std::vector<Probe*> live;
    std::vector<std::string> refused;  // "address:per_address" or "address:total"
    std::vector<std::string> expired, stopped;
    int destroyed = 0;
    std::unique_ptr<SessionSet> set;
    int port = 0;

    explicit Fixture(SessionLimits limits) {
        set = std::make_unique<SessionSet>(
            base.get(), limits, "T",
            [this](SessionSet::Accepted& a) {
                auto p = std::make_unique<Probe>(*this, a);
                live.push_back(p.get());
                return p;
            },
            [this](const SessionSet::Accepted& a, SessionSet::Refusal why) {
                refused.push_back(a.address + (why == SessionSet::Refusal::per_address ? ":per_address" : ":total"));
            });
        auto fd = net::listen_tcp("127.0.0.1:0");
        REQUIRE(fd.ok());
        std::string bound = net::local_address(fd->get());
        port = std::stoi(bound.substr(bound.rfind(':') + 1));
        REQUIRE(set->listen(std::move(fd.value()), "test " + bound).ok());
        set->enable();
    }

    // A client socket bound to `source` (127.0.0.2, 127.0.0.3, ...), connected to the set.
    Fd connect_from(const std::string& source) {
        Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        inet_pton(AF_INET, source.c_str(), &a.sin_addr);
        REQUIRE(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(static_cast<uint16_t>(port));
        inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
        REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
        return s;
    }

    // Runs the loop until `cond` holds (or 5 s pass).
    bool run_until(const std::function<bool()>& cond) {
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!cond() && std::chrono::steady_clock::now() < end) {
            timeval tv{0, 10000};
            event_base_loopexit(base.get(), &tv);
            event_base_dispatch(base.get());
        }
        return cond();
    }

    void release(Probe* p) {
        std::erase(live, p);
        set->release(p);
    }
};

Probe::~Probe() { ++fx.destroyed; }
void Probe::on_lifetime_expired() { fx.expired.push_back(id); }
void Probe::on_stop() {
    fx.stopped.push_back(id);
    if (!ignore_stop) fx.release(this);
}

}  // namespace

TEST_CASE("session set: the per-address limit allows N and refuses N+1, other addresses still served", "[event]") {
    Fixture fx({.max_sessions = 10, .max_per_address = 3, .lifetime = 0});
    std::vector<Fd> held;
    for (int i = 0; i < 3; ++i) held.push_back(fx.connect_from("127.0.0.2"));
    REQUIRE(fx.run_until([&] { return fx.live.size() == 3; }));
    CHECK(fx.set->count("127.0.0.2") == 3);
    CHECK(fx.refused.empty());

    held.push_back(fx.connect_from("127.0.0.2"));  // the fourth from that address
    REQUIRE(fx.run_until([&] { return fx.refused.size() == 1; }));
    CHECK(fx.refused[0] == "127.0.0.2:per_address");
    CHECK(fx.live.size() == 3);

    held.push_back(fx.connect_from("127.0.0.3"));  // another address is served
    REQUIRE(fx.run_until([&] { return fx.live.size() == 4; }));
    CHECK(fx.live.back()->address == "127.0.0.3");
    CHECK(fx.refused.size() == 1);

    SECTION("a released session frees its place at once, and is destroyed from the loop") {
        Probe* first = fx.live.front();
        fx.release(first);
        CHECK(fx.set->count("127.0.0.2") == 2);
        CHECK(fx.destroyed == 0);  // not inside the caller's stack
        REQUIRE(fx.run_until([&] { return fx.destroyed == 1; }));
        held.push_back(fx.connect_from("127.0.0.2"));
        REQUIRE(fx.run_until([&] { return fx.live.size() == 4; }));
        CHECK(fx.set->count("127.0.0.2") == 3);
        CHECK(fx.refused.size() == 1);
    }
}

TEST_CASE("session set: the total limit allows N and refuses N+1", "[event]") {
    Fixture fx({.max_sessions = 2, .max_per_address = 0, .lifetime = 0});
    std::vector<Fd> held;
    held.push_back(fx.connect_from("127.0.0.2"));
    held.push_back(fx.connect_from("127.0.0.3"));
    REQUIRE(fx.run_until([&] { return fx.live.size() == 2; }));
    held.push_back(fx.connect_from("127.0.0.4"));
    REQUIRE(fx.run_until([&] { return fx.refused.size() == 1; }));
    CHECK(fx.refused[0] == "127.0.0.4:total");
    // The refused connection is closed by the set: the client reads EOF.
    char c;
    CHECK(::read(held.back().get(), &c, 1) == 0);
    CHECK(fx.set->size() == 2);
}

TEST_CASE("session set: ids are distinct and carry the prefix", "[event]") {
    Fixture fx({.max_sessions = 0, .max_per_address = 0, .lifetime = 0});
    std::vector<Fd> held;
    held.push_back(fx.connect_from("127.0.0.2"));
    held.push_back(fx.connect_from("127.0.0.2"));
    REQUIRE(fx.run_until([&] { return fx.live.size() == 2; }));
    CHECK(fx.live[0]->id.rfind("T", 0) == 0);
    CHECK(fx.live[0]->id != fx.live[1]->id);
}

TEST_CASE("session set: a session is told when its lifetime is over", "[event]") {
    Fixture fx({.max_sessions = 0, .max_per_address = 0, .lifetime = 0.2});
    auto t0 = std::chrono::steady_clock::now();
    Fd held = fx.connect_from("127.0.0.2");
    REQUIRE(fx.run_until([&] { return fx.expired.size() == 1; }));
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(took >= 0.19);  // not before its lifetime; run_until bounds the wait
}

TEST_CASE("session set: stop stops accepting, tells every session, and reports when all are gone", "[event]") {
    Fixture fx({.max_sessions = 0, .max_per_address = 0, .lifetime = 0});
    std::vector<Fd> held;
    held.push_back(fx.connect_from("127.0.0.2"));
    held.push_back(fx.connect_from("127.0.0.3"));
    REQUIRE(fx.run_until([&] { return fx.live.size() == 2; }));
    bool done = false;
    fx.set->stop(5, [&] { done = true; });
    CHECK(fx.stopped.size() == 2);
    REQUIRE(fx.run_until([&] { return done; }));
    CHECK(fx.destroyed == 2);
}

TEST_CASE("session set: stop destroys the sessions left after the grace period", "[event]") {
    Fixture fx({.max_sessions = 0, .max_per_address = 0, .lifetime = 0});
    Fd held = fx.connect_from("127.0.0.2");
    REQUIRE(fx.run_until([&] { return fx.live.size() == 1; }));
    fx.live.front()->ignore_stop = true;  // it never releases itself
    bool done = false;
    auto t0 = std::chrono::steady_clock::now();
    fx.set->stop(0.2, [&] { done = true; });
    REQUIRE(fx.run_until([&] { return done; }));
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >= 0.19);
    CHECK(fx.destroyed == 1);
    CHECK(fx.set->size() == 0);
}

TEST_CASE("request deadline: the allowance grows with the bytes received", "[event]") {
    CHECK(request_allowance(300, 500, 0) == 300);
    CHECK(request_allowance(300, 500, 10240000) == 300 + 20480);
    CHECK(request_allowance(300, 0, 10240000) == 300);  // no rate: a plain deadline
    CHECK(request_allowance(0, 500, 1000) < 0);         // no deadline at all
}

TEST_CASE("request deadline: a trickle fires it, enough bytes keep it away, end() cancels it", "[event]") {
    EventBase base(event_base_new());
    int fired = 0;
    RequestDeadline d(base.get(), 0.3, 100, [&] { ++fired; });
    auto run_for = [&](double s) {
        timeval tv = to_timeval(s);
        event_base_loopexit(base.get(), &tv);
        event_base_dispatch(base.get());
    };
    d.begin();
    d.add(50);  // +0.5 s: the deadline is now 0.8 s away
    run_for(0.5);
    CHECK(fired == 0);
    run_for(0.5);
    CHECK(fired == 1);
    CHECK_FALSE(d.running());

    d.begin();
    run_for(0.1);
    d.end();
    run_for(0.4);
    CHECK(fired == 1);
}
