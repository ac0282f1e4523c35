// Authenticator (off-loop crypt, failure delay and limit, cancellation) and the plaintext_auth policy.
#include <catch.hpp>

#include <event2/event.h>

#include <chrono>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "common/auth/auth.hpp"
#include "common/event/event.hpp"

using namespace ferry;
using namespace std::chrono_literals;

namespace {

// An in-memory account table behind the AccountStore interface, with real crypt(3) hashes.
class MemoryStore : public AccountStore {
public:
    std::map<std::string, Account> accounts;
    bool broken = false;
    std::thread::id lookup_thread;

    Result<bool> has_domain(std::string_view) override { return true; }
    Result<std::optional<Account>> account(std::string_view address) override {
        lookup_thread = std::this_thread::get_id();
        if (broken) return make_error(451, "4.3.0", "database unavailable");
        auto it = accounts.find(std::string(address));
        if (it == accounts.end()) return std::optional<Account>();
        return std::optional<Account>(it->second);
    }
    Result<std::vector<std::string>> alias(std::string_view) override { return std::vector<std::string>(); }
};

struct Fixture {
    EventBase base{event_base_new()};
    MemoryStore store;
    Fixture() {
        Account a;
        a.address = "demo@example.test";
        a.password_hash = hash_password("secret").value();
        store.accounts[a.address] = a;
    }
    // Runs the loop until `done` or 10 s pass.
    void run_until(const bool& done) {
        auto start = std::chrono::steady_clock::now();
        while (!done && std::chrono::steady_clock::now() - start < 10s) event_base_loop(base.get(), EVLOOP_ONCE);
    }
};

AuthSettings quick(int max_failures = 10, std::chrono::milliseconds delay = 0ms) {
    AuthSettings s;
    s.workers = 2;
    s.failure_delay = delay;
    s.max_failures = max_failures;
    s.failure_window = 600s;
    return s;
}

struct Outcome {
    bool done = false;
    AuthResult result;
};

AuthTicket check(Authenticator& auth, Outcome& out, const std::string& user, const std::string& pw,
                 const std::string& ip = "192.0.2.1") {
    return auth.check(user, pw, ip, [&out](const AuthResult& r) {
        out.done = true;
        out.result = r;
    });
}

}  // namespace

TEST_CASE("Authenticator verifies on a worker and answers on the loop", "[auth]") {
    Fixture f;
    Authenticator auth(f.base.get(), f.store, quick());
    Outcome good, bad, unknown;
    auto t1 = check(auth, good, "Demo@Example.TEST", "secret");
    auto t2 = check(auth, bad, "demo@example.test", "wrong");
    auto t3 = check(auth, unknown, "nobody@example.test", "secret");
    // Never called from inside check().
    CHECK_FALSE(good.done);
    CHECK(t1.pending());
    f.run_until(good.done);
    f.run_until(bad.done);
    f.run_until(unknown.done);
    CHECK(good.result.status == AuthResult::ok);
    CHECK(good.result.user == "demo@example.test");
    CHECK(bad.result.status == AuthResult::failed);
    CHECK(unknown.result.status == AuthResult::failed);
    CHECK(unknown.result.detail == "unknown user");
    CHECK_FALSE(t1.pending());
    CHECK(auth.failures("192.0.2.1") == 2);
}

TEST_CASE("a failed check answers only after auth_failure_delay", "[auth]") {
    Fixture f;
    Authenticator auth(f.base.get(), f.store, quick(10, 300ms));
    Outcome ok, bad;
    auto start = std::chrono::steady_clock::now();
    auto t1 = check(auth, ok, "demo@example.test", "secret");
    f.run_until(ok.done);
    auto ok_time = std::chrono::steady_clock::now() - start;
    start = std::chrono::steady_clock::now();
    auto t2 = check(auth, bad, "demo@example.test", "nope");
    f.run_until(bad.done);
    auto bad_time = std::chrono::steady_clock::now() - start;
    CHECK(ok.result.status == AuthResult::ok);
    CHECK(ok_time < 300ms);
    CHECK(bad.result.status == AuthResult::failed);
    CHECK(bad_time >= 300ms);
}

TEST_CASE("after auth_max_failures an address is refused without running crypt", "[auth]") {
    Fixture f;
    Authenticator auth(f.base.get(), f.store, quick(3));
    for (int i = 0; i < 3; ++i) {
        Outcome o;
        auto t = check(auth, o, "demo@example.test", "guess" + std::to_string(i), "198.51.100.7");
        f.run_until(o.done);
        CHECK(o.result.status == AuthResult::failed);
    }
    CHECK(auth.failures("198.51.100.7") == 3);
    Outcome right;
    auto t = check(auth, right, "demo@example.test", "secret", "198.51.100.7");
    f.run_until(right.done);
    CHECK(right.result.status == AuthResult::refused);
    // Refusals do not add to the count; other addresses are unaffected.
    CHECK(auth.failures("198.51.100.7") == 3);
    Outcome other;
    auto t2 = check(auth, other, "demo@example.test", "secret", "198.51.100.8");
    f.run_until(other.done);
    CHECK(other.result.status == AuthResult::ok);
}

TEST_CASE("failures leave the count after auth_failure_window", "[auth]") {
    Fixture f;
    AuthSettings s = quick(1);
    s.failure_window = 1s;
    Authenticator auth(f.base.get(), f.store, s);
    Outcome o1;
    auto t1 = check(auth, o1, "demo@example.test", "bad");
    f.run_until(o1.done);
    Outcome o2;
    auto t2 = check(auth, o2, "demo@example.test", "secret");
    f.run_until(o2.done);
    CHECK(o2.result.status == AuthResult::refused);
    std::this_thread::sleep_for(1100ms);
    CHECK(auth.failures("192.0.2.1") == 0);
    Outcome o3;
    auto t3 = check(auth, o3, "demo@example.test", "secret");
    f.run_until(o3.done);
    CHECK(o3.result.status == AuthResult::ok);
}

TEST_CASE("auth_max_failures = 0 never refuses", "[auth]") {
    Fixture f;
    Authenticator auth(f.base.get(), f.store, quick(0));
    for (int i = 0; i < 5; ++i) {
        Outcome o;
        auto t = check(auth, o, "demo@example.test", "bad");
        f.run_until(o.done);
        CHECK(o.result.status == AuthResult::failed);
    }
    Outcome o;
    auto t = check(auth, o, "demo@example.test", "secret");
    f.run_until(o.done);
    CHECK(o.result.status == AuthResult::ok);
}

TEST_CASE("a cancelled check never calls back", "[auth]") {
    Fixture f;
    Authenticator auth(f.base.get(), f.store, quick(10, 100ms));
    Outcome gone, gone_delayed, later;
    auto t1 = check(auth, gone, "demo@example.test", "secret");
    t1.reset();  // the session went away while crypt runs
    auto t2 = check(auth, gone_delayed, "demo@example.test", "bad");
    auto t3 = check(auth, later, "demo@example.test", "bad");
    f.run_until(later.done);  // both failures are now waiting in or past their delay
    CHECK_FALSE(gone.done);
    CHECK_FALSE(t1.pending());
    // Cancel during the failure delay: the timer goes with it.
    Outcome o;
    auto t4 = check(auth, o, "demo@example.test", "bad2");
    auto moved = std::move(t4);
    CHECK_FALSE(t4.pending());
    moved = AuthTicket();
    Outcome marker;
    auto t5 = check(auth, marker, "demo@example.test", "bad3");
    f.run_until(marker.done);
    CHECK_FALSE(o.done);
}

TEST_CASE("a ticket may be dropped from inside its own callback", "[auth]") {
    Fixture f;
    Authenticator auth(f.base.get(), f.store, quick());
    bool called = false;
    std::optional<AuthTicket> ticket;
    ticket = auth.check("demo@example.test", "secret", "192.0.2.9", [&](const AuthResult&) {
        called = true;
        ticket.reset();  // as a session destroying itself would
    });
    f.run_until(called);
    CHECK(called);
    CHECK_FALSE(ticket.has_value());
}

TEST_CASE("a database error is a temporary failure and not counted", "[auth]") {
    Fixture f;
    f.store.broken = true;
    Authenticator auth(f.base.get(), f.store, quick(1));
    Outcome o;
    auto t = check(auth, o, "demo@example.test", "secret");
    f.run_until(o.done);
    CHECK(o.result.status == AuthResult::tempfail);
    CHECK(auth.failures("192.0.2.1") == 0);
    CHECK(f.store.lookup_thread == std::this_thread::get_id());  // the store is only used from the loop
}

TEST_CASE("parallel guesses from one address cannot outrun auth_max_failures", "[auth]") {
    Fixture f;
    Authenticator auth(f.base.get(), f.store, quick(3));
    // 50 guesses sent at once (50 connections): the right password comes last.
    const int n = 50;
    std::vector<Outcome> out(n);
    std::vector<AuthTicket> tickets;
    for (int i = 0; i < n; ++i)
        tickets.push_back(check(auth, out[i], "demo@example.test", i == n - 1 ? "secret" : "guess" + std::to_string(i),
                                "198.51.100.7"));
    std::map<AuthResult::Status, int> by;
    for (auto& o : out) {
        f.run_until(o.done);
        REQUIRE(o.done);
        ++by[o.result.status];
    }
    CHECK(by[AuthResult::failed] == 3);   // only as many crypt runs as the limit allows
    CHECK(by[AuthResult::refused] == n - 3);
    CHECK(by[AuthResult::ok] == 0);
    CHECK(auth.failures("198.51.100.7") == 3);
    // Another address is not held back by them.
    Outcome other;
    auto t = check(auth, other, "demo@example.test", "secret", "198.51.100.8");
    f.run_until(other.done);
    CHECK(other.result.status == AuthResult::ok);
}

TEST_CASE("parallel correct logins from one address wait their turn and all succeed", "[auth]") {
    Fixture f;
    Authenticator auth(f.base.get(), f.store, quick(10));
    // A webmail server or imaptest's 50 clients: 50 logins at once, none of them wrong.
    const int n = 50;
    std::vector<Outcome> out(n);
    std::vector<AuthTicket> tickets;
    for (int i = 0; i < n; ++i) tickets.push_back(check(auth, out[i], "demo@example.test", "secret", "198.51.100.20"));
    CHECK(auth.waiting() == n);  // 10 in crypt, 40 waiting for the address's allowance
    for (auto& o : out) {
        f.run_until(o.done);
        REQUIRE(o.done);
        CHECK(o.result.status == AuthResult::ok);
    }
    CHECK(auth.failures("198.51.100.20") == 0);
    CHECK(auth.waiting() == 0);
}

TEST_CASE("beyond auth_max_queued waiting checks per address the answer is tempfail", "[auth]") {
    Fixture f;
    AuthSettings s = quick(3);
    s.max_queued = 5;
    Authenticator auth(f.base.get(), f.store, s);
    const int n = 20;
    std::vector<Outcome> out(n);
    std::vector<AuthTicket> tickets;
    for (int i = 0; i < n; ++i) tickets.push_back(check(auth, out[i], "demo@example.test", "secret", "198.51.100.30"));
    CHECK(auth.waiting() == 3 + 5);
    std::map<AuthResult::Status, int> by;
    for (int i = 0; i < n; ++i) {
        f.run_until(out[i].done);
        REQUIRE(out[i].done);
        ++by[out[i].result.status];
        if (i >= 8) CHECK(out[i].result.detail == "too many password checks waiting from 198.51.100.30");
    }
    CHECK(by[AuthResult::ok] == 8);
    CHECK(by[AuthResult::tempfail] == n - 8);
    CHECK(auth.failures("198.51.100.30") == 0);
    // Another address has its own queue.
    Outcome other;
    auto t = check(auth, other, "demo@example.test", "secret", "198.51.100.31");
    f.run_until(other.done);
    CHECK(other.result.status == AuthResult::ok);
}

TEST_CASE("a check that hangs up while waiting its turn leaves the queue and is not a failure", "[auth]") {
    Fixture f;
    AuthSettings s = quick(1);
    s.workers = 1;
    Authenticator auth(f.base.get(), f.store, s);
    Outcome first, gone, last;
    auto t1 = check(auth, first, "demo@example.test", "secret", "198.51.100.40");
    auto t2 = check(auth, gone, "demo@example.test", "guess", "198.51.100.40");
    auto t3 = check(auth, last, "demo@example.test", "secret", "198.51.100.40");
    CHECK(auth.waiting() == 3);
    t2.reset();  // waiting, never started: nothing was tried, so nothing is counted
    CHECK(auth.waiting() == 2);
    f.run_until(first.done);
    f.run_until(last.done);
    CHECK(first.result.status == AuthResult::ok);
    CHECK(last.result.status == AuthResult::ok);
    CHECK_FALSE(gone.done);
    CHECK(auth.failures("198.51.100.40") == 0);
}

TEST_CASE("checks waiting their turn are refused once the failures reach the limit", "[auth]") {
    Fixture f;
    AuthSettings s = quick(2);
    Authenticator auth(f.base.get(), f.store, s);
    Outcome g1, g2, right;
    auto t1 = check(auth, g1, "demo@example.test", "guess1", "198.51.100.50");
    auto t2 = check(auth, g2, "demo@example.test", "guess2", "198.51.100.50");
    auto t3 = check(auth, right, "demo@example.test", "secret", "198.51.100.50");
    f.run_until(right.done);
    CHECK(g1.result.status == AuthResult::failed);
    CHECK(g2.result.status == AuthResult::failed);
    CHECK(right.result.status == AuthResult::refused);  // crypt never ran for it
    CHECK(auth.waiting() == 0);
}

TEST_CASE("a check abandoned before its answer counts as a failure and leaves the queue", "[auth]") {
    Fixture f;
    AuthSettings s = quick(3);
    s.workers = 1;
    Authenticator auth(f.base.get(), f.store, s);
    // What one crypt costs here, to compare against.
    Outcome first;
    auto start = std::chrono::steady_clock::now();
    auto t0 = check(auth, first, "demo@example.test", "secret", "192.0.2.50");
    f.run_until(first.done);
    auto one = std::chrono::steady_clock::now() - start;
    REQUIRE(first.result.status == AuthResult::ok);
    // "AUTH PLAIN <guess>", then hang up, 300 times from one address.
    for (int i = 0; i < 300; ++i) {
        Outcome o;
        AuthTicket t = check(auth, o, "demo@example.test", "guess" + std::to_string(i), "203.0.113.9");
    }
    CHECK(auth.failures("203.0.113.9") == 3);
    // The abandoned guesses left the worker queue: an honest login waits for at most the one
    // crypt already running, not for 300.
    Outcome honest;
    start = std::chrono::steady_clock::now();
    auto t1 = check(auth, honest, "demo@example.test", "secret", "192.0.2.50");
    f.run_until(honest.done);
    auto waited = std::chrono::steady_clock::now() - start;
    CHECK(honest.result.status == AuthResult::ok);
    CHECK(waited < 5 * one + 500ms);
    // And the guessing address is now refused, its hang-ups having cost it its attempts.
    Outcome again;
    auto t2 = check(auth, again, "demo@example.test", "secret", "203.0.113.9");
    f.run_until(again.done);
    CHECK(again.result.status == AuthResult::refused);
}

TEST_CASE("at most 64 checks per worker wait for crypt; beyond, tempfail", "[auth]") {
    Fixture f;
    // A hash that keeps the single worker busy for a while, so the queue stays full.
    Account slow;
    slow.address = "slow@example.test";
    slow.password_hash = "$6$rounds=300000$saltsalt$notthehash";
    f.store.accounts[slow.address] = slow;
    AuthSettings s = quick(0);  // no per-address limit: only the queue bound applies
    s.workers = 1;
    Authenticator auth(f.base.get(), f.store, s);
    const int n = 70;
    std::vector<Outcome> out(n);
    std::vector<AuthTicket> queued, refused;
    for (int i = 0; i < n; ++i)
        (i < 64 ? queued : refused).push_back(check(auth, out[i], "slow@example.test", "guess" + std::to_string(i),
                                                     "198.51.100." + std::to_string(i)));
    CHECK(auth.waiting() == 64);
    // Hanging up takes the queued checks off the queue at once; only the one the worker has begun stays.
    queued.clear();
    CHECK(auth.waiting() <= 1);
    for (int i = 64; i < n; ++i) {
        f.run_until(out[i].done);
        CHECK(out[i].result.status == AuthResult::tempfail);
    }
    for (int i = 0; i < 64; ++i) CHECK_FALSE(out[i].done);
    // The freed room takes new checks again.
    Outcome good;
    auto t = check(auth, good, "demo@example.test", "secret", "192.0.2.200");
    f.run_until(good.done);
    CHECK(good.result.status == AuthResult::ok);
}

TEST_CASE("plaintext_auth policy table", "[auth][policy]") {
    struct Row {
        const char* policy;
        bool tls, loopback, allowed;
    };
    const Row rows[] = {
        {"never", false, false, false},   {"never", false, true, false},   {"never", true, false, true},
        {"never", true, true, true},      {"loopback", false, false, false}, {"loopback", false, true, true},
        {"loopback", true, false, true},  {"loopback", true, true, true},  {"always", false, false, true},
        {"always", false, true, true},    {"always", true, false, true},   {"bogus", false, true, false},
    };
    for (const auto& r : rows) {
        CAPTURE(r.policy, r.tls, r.loopback);
        CHECK(plaintext_allowed(r.policy, r.tls, r.loopback) == r.allowed);
    }
    Config c = Config::defaults("smtpd");
    CHECK(plaintext_allowed(c, false, true));   // default: loopback
    CHECK_FALSE(plaintext_allowed(c, false, false));
    REQUIRE(c.set("plaintext_auth", "never").ok());
    CHECK_FALSE(plaintext_allowed(c, false, true));
    CHECK(plaintext_allowed(c, true, false));
}

TEST_CASE("AuthSettings come from the auth_* keys", "[auth]") {
    Config c = Config::defaults("popd");
    AuthSettings d = AuthSettings::from_config(c);
    CHECK(d.workers == 2);
    CHECK(d.failure_delay == 2s);
    CHECK(d.max_failures == 10);
    CHECK(d.failure_window == 600s);
    REQUIRE(c.set("auth_failure_delay", "0").ok());
    REQUIRE(c.set("auth_workers", "4").ok());
    AuthSettings s = AuthSettings::from_config(c);
    CHECK(s.failure_delay == 0ms);
    CHECK(s.workers == 4);
}
