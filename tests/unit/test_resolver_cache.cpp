// The DNS answer cache: TTLs read from packets, expiry on an injected clock, the size bound,
// failures never kept, and cached answers delivered later on the loop.
#include <catch.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/event/event.hpp"
#include "common/event/resolver_answer.hpp"
#include "common/event/resolver_cache.hpp"
#include "tests/unit/test_resolver_packet.hpp"

using namespace ferry;
using dns::Status;
using test::DnsPacket;

TEST_CASE("an answer's TTL is the smallest of the records and CNAMEs used", "[dns][dns_cache]") {
    DnsPacket p("a.example", DnsPacket::TXT);
    p.txt("a.example", "one", 600).txt("a.example", "two", 120).txt("other.example", "off the chain", 5);
    auto r = dns::parse_txt_answer(p.bytes, "a.example");
    REQUIRE(r.answer.status == Status::ok);
    CHECK(r.answer.ttl == 120);

    DnsPacket chain("alias.example", DnsPacket::A);
    chain.cname("alias.example", "real.example", 30).a("real.example", "192.0.2.1", 3600);
    auto c = dns::parse_address_answer(chain.bytes, "alias.example", false);
    REQUIRE(c.answer.status == Status::ok);
    CHECK(c.answer.ttl == 30);

    DnsPacket mx("m.example", DnsPacket::MX);
    mx.mx("m.example", 10, "mx.m.example");
    CHECK(dns::parse_mx_answer(mx.bytes, "m.example").answer.ttl == 300);

    // RFC 2181 8: a TTL with the top bit set counts as zero.
    DnsPacket huge("h.example", DnsPacket::TXT);
    huge.txt("h.example", "x", 0x80000001u);
    CHECK(dns::parse_txt_answer(huge.bytes, "h.example").answer.ttl == 0);
}

TEST_CASE("a negative answer's TTL is the SOA's minimum or TTL, whichever is smaller", "[dns][dns_cache]") {
    DnsPacket nx("gone.example", DnsPacket::TXT, 3);
    nx.soa("example", 3600, 300);
    auto a = dns::parse_txt_answer(nx.bytes, "gone.example");
    CHECK(a.answer.status == Status::nxdomain);
    CHECK(a.answer.ttl == 300);

    DnsPacket nodata("a.example", DnsPacket::TXT);
    nodata.soa("example", 60, 900);
    auto b = dns::parse_txt_answer(nodata.bytes, "a.example");
    CHECK(b.answer.status == Status::nodata);
    CHECK(b.answer.ttl == 60);

    // Without an SOA there is nothing to say how long "no" holds: not kept.
    CHECK(dns::parse_txt_answer(DnsPacket("gone.example", DnsPacket::TXT, 3).bytes, "gone.example").answer.ttl == 0);
    // Failures carry no TTL.
    DnsPacket servfail("a.example", DnsPacket::TXT, 2);
    servfail.soa("example", 3600, 300);
    CHECK(dns::parse_txt_answer(servfail.bytes, "a.example").answer.ttl == 0);
}

namespace {

// Holds each question until the test answers it; counts what reached it.
struct FakeResolver : dns::Resolver {
    std::map<std::string, int> asked;
    std::vector<std::function<void(dns::TextAnswer)>> pending_txt;
    std::vector<std::function<void(dns::MxAnswer)>> pending_mx;
    void mx(const std::string& name, std::function<void(dns::MxAnswer)> done) override {
        ++asked["mx:" + name];
        pending_mx.push_back(std::move(done));
    }
    void addresses(const std::string& name, std::function<void(dns::AddressAnswer)> done) override {
        ++asked["addr:" + name];
        done(dns::AddressAnswer{Status::temporary, {}, "not in this test"});
    }
    void txt(const std::string& name, std::function<void(dns::TextAnswer)> done) override {
        ++asked["txt:" + name];
        pending_txt.push_back(std::move(done));
    }
    // Answers the oldest pending TXT question.
    void answer_txt(dns::TextAnswer a) {
        auto done = std::move(pending_txt.front());
        pending_txt.erase(pending_txt.begin());
        done(std::move(a));
    }
};

struct CacheFixture {
    EventBase base{event_base_new()};
    std::chrono::steady_clock::time_point now{std::chrono::hours(1000)};
    FakeResolver* fake = nullptr;
    std::unique_ptr<dns::Resolver> cache;

    explicit CacheFixture(dns::CacheLimits limits = {}) {
        auto inner = std::make_unique<FakeResolver>();
        fake = inner.get();
        cache = dns::with_cache(base.get(), std::move(inner), limits, [this] { return now; });
    }

    // One TXT lookup through the cache; `answer` is what the fake answers if the question reaches it.
    std::optional<dns::TextAnswer> txt(const std::string& name, const dns::TextAnswer& answer) {
        std::optional<dns::TextAnswer> got;
        size_t before = fake->pending_txt.size();
        cache->txt(name, [&](dns::TextAnswer a) { got = std::move(a); });
        if (fake->pending_txt.size() > before) fake->answer_txt(answer);
        event_base_loop(base.get(), EVLOOP_NONBLOCK);
        return got;
    }
};

dns::TextAnswer spf(uint32_t ttl) { return dns::TextAnswer{Status::ok, {"v=spf1 -all"}, {}, ttl}; }

}  // namespace

TEST_CASE("an answer is served from the cache within its TTL and asked again after it", "[dns][dns_cache]") {
    CacheFixture f;
    auto first = f.txt("a.example", spf(300));
    REQUIRE(first);
    CHECK(first->records == std::vector<std::string>{"v=spf1 -all"});
    f.now += std::chrono::seconds(100);
    auto second = f.txt("A.Example.", spf(300));
    REQUIRE(second);
    CHECK(second->status == Status::ok);
    CHECK(second->records == std::vector<std::string>{"v=spf1 -all"});
    CHECK(second->ttl == 200);
    CHECK(f.fake->asked["txt:a.example"] == 1);
    f.now += std::chrono::seconds(200);
    REQUIRE(f.txt("a.example", spf(300)));
    CHECK(f.fake->asked["txt:a.example"] == 2);
}

TEST_CASE("TTL 0 is never kept and dns_cache_max_ttl caps a long TTL", "[dns][dns_cache]") {
    CacheFixture f({10000, 60});
    REQUIRE(f.txt("zero.example", spf(0)));
    REQUIRE(f.txt("zero.example", spf(0)));
    CHECK(f.fake->asked["txt:zero.example"] == 2);

    REQUIRE(f.txt("long.example", spf(86400)));
    f.now += std::chrono::seconds(59);
    REQUIRE(f.txt("long.example", spf(86400)));
    CHECK(f.fake->asked["txt:long.example"] == 1);
    f.now += std::chrono::seconds(1);
    REQUIRE(f.txt("long.example", spf(86400)));
    CHECK(f.fake->asked["txt:long.example"] == 2);
}

TEST_CASE("negative answers are kept, temporary and permanent failures never", "[dns][dns_cache]") {
    CacheFixture f;
    REQUIRE(f.txt("gone.example", dns::TextAnswer{Status::nxdomain, {}, "NXDOMAIN", 300}));
    auto again = f.txt("gone.example", spf(300));
    REQUIRE(again);
    CHECK(again->status == Status::nxdomain);
    CHECK(f.fake->asked["txt:gone.example"] == 1);

    for (Status s : {Status::temporary, Status::permanent}) {
        f.fake->asked.clear();
        REQUIRE(f.txt("flaky.example", dns::TextAnswer{s, {}, "doubt", 300}));
        auto next = f.txt("flaky.example", spf(300));
        REQUIRE(next);
        CHECK(next->status == Status::ok);
        CHECK(f.fake->asked["txt:flaky.example"] == 2);
        f.now += std::chrono::hours(2);  // let the good answer expire for the next round
    }
}

TEST_CASE("the cache holds at most dns_cache_size answers, dropping the least recently used", "[dns][dns_cache]") {
    CacheFixture f({2, 3600});
    REQUIRE(f.txt("one.example", spf(300)));
    REQUIRE(f.txt("two.example", spf(300)));
    REQUIRE(f.txt("one.example", spf(300)));    // from the cache: one is now the most recent
    REQUIRE(f.txt("three.example", spf(300)));  // full: two goes
    CHECK(f.fake->asked["txt:one.example"] == 1);
    REQUIRE(f.txt("one.example", spf(300)));
    CHECK(f.fake->asked["txt:one.example"] == 1);
    REQUIRE(f.txt("two.example", spf(300)));
    CHECK(f.fake->asked["txt:two.example"] == 2);
}

TEST_CASE("a cached answer runs later on the loop, never inside the call", "[dns][dns_cache]") {
    CacheFixture f;
    REQUIRE(f.txt("a.example", spf(300)));
    bool called = false;
    f.cache->txt("a.example", [&](dns::TextAnswer a) {
        called = true;
        CHECK(a.status == Status::ok);
    });
    CHECK_FALSE(called);
    event_base_loop(f.base.get(), EVLOOP_NONBLOCK);
    CHECK(called);
    CHECK(f.fake->asked["txt:a.example"] == 1);
    // Types are kept apart: an MX question for the same name still reaches the resolver.
    f.cache->mx("a.example", [](dns::MxAnswer) {});
    CHECK(f.fake->asked["mx:a.example"] == 1);
}

TEST_CASE("an answer arriving after the cache is gone still reaches its caller", "[dns][dns_cache]") {
    CacheFixture f;
    FakeResolver* fake = f.fake;
    std::vector<std::function<void(dns::TextAnswer)>> held;
    bool called = false;
    f.cache->txt("a.example", [&](dns::TextAnswer) { called = true; });
    held.swap(fake->pending_txt);
    f.cache.reset();  // the fake goes with it; its held callback outlives both
    held.front()(spf(300));
    CHECK(called);
}

TEST_CASE("dns_cache_size 0 is no cache at all", "[dns][dns_cache]") {
    EventBase base{event_base_new()};
    auto inner = std::make_unique<FakeResolver>();
    auto* raw = inner.get();
    auto r = dns::with_cache(base.get(), std::move(inner), {0, 3600});
    CHECK(r.get() == raw);
}
