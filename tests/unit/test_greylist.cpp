// Greylisting: client blocks, triplet keys, the decision over time, what vouches for a client, the domain map, and the database.
#include <catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "mta/smtpd/greylist.hpp"
#include "mta/smtpd/greylist_db.hpp"
#include "scratch.hpp"

using namespace ferry;
using namespace ferry::smtpd;

namespace {

const GreylistTimes kTimes{300, 3600, 86400};

}  // namespace

TEST_CASE("greylist: the client's block is its IPv4 /24 or IPv6 /64", "[greylist]") {
    struct Case {
        const char* address;
        const char* block;
    };
    const Case cases[] = {
        {"192.0.2.77", "192.0.2.0/24"},
        {"10.1.2.3", "10.1.2.0/24"},
        {"::ffff:198.51.100.9", "198.51.100.0/24"},
        {"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
        {"2001:db8::1", "2001:db8::/64"},
        {"::1", "::/64"},
        {"mx.example", ""},
        {"", ""},
        {"192.0.2.300", ""},
    };
    for (const auto& c : cases) {
        INFO(c.address);
        CHECK(client_block(c.address) == c.block);
    }
}

TEST_CASE("greylist: triplet keys are lower case, the null sender is <>", "[greylist]") {
    CHECK(triplet_key("192.0.2.0/24", "Alice@Example.ORG", "Bob@Example.TEST") ==
          "t:192.0.2.0/24\talice@example.org\tbob@example.test");
    CHECK(triplet_key("192.0.2.0/24", "", "bob@example.test") == "t:192.0.2.0/24\t<>\tbob@example.test");
}

TEST_CASE("greylist: records round-trip and bad ones are refused", "[greylist]") {
    GreylistEntry e{1700000000, 1700000400, 1700000900};
    CHECK(encode_greylist_entry(e) == "1\t1700000000\t1700000400\t1700000900");
    auto d = decode_greylist_entry(encode_greylist_entry(e));
    REQUIRE(d);
    CHECK(d->first_seen == e.first_seen);
    CHECK(d->passed == e.passed);
    CHECK(d->last_seen == e.last_seen);
    for (const char* bad : {"", "1", "2\t1\t0\t1", "1\t1\t0", "1\t1\t0\t1\t5", "1\tx\t0\t1", "1\t-5\t0\t1", "1\t1\t0\t1 "}) {
        INFO(bad);
        CHECK_FALSE(decode_greylist_entry(bad));
    }
}

TEST_CASE("greylist: first attempt deferred, early retry deferred, retry after the delay passes, then known", "[greylist]") {
    const int64_t t0 = 1700000000;
    auto first = greylist_decide(std::nullopt, t0, kTimes);
    CHECK_FALSE(first.pass);
    CHECK(first.wait == 300);
    CHECK(first.reason == "first seen");
    REQUIRE(first.store);
    CHECK(first.entry.first_seen == t0);
    CHECK(first.entry.passed == 0);

    auto early = greylist_decide(first.entry, t0 + 100, kTimes);
    CHECK_FALSE(early.pass);
    CHECK(early.wait == 200);
    CHECK(early.reason == "retry too early");
    CHECK_FALSE(early.store);  // the wait counts from the first attempt, not from the last

    auto retry = greylist_decide(first.entry, t0 + 300, kTimes);
    CHECK(retry.pass);
    CHECK(retry.reason == "retry after 300s");
    REQUIRE(retry.store);
    CHECK(retry.entry.passed == t0 + 300);

    auto known = greylist_decide(retry.entry, t0 + 330, kTimes);
    CHECK(known.pass);
    CHECK(known.reason == "known");
    CHECK_FALSE(known.store);  // seen within the last minute: not rewritten
    auto later = greylist_decide(retry.entry, t0 + 5000, kTimes);
    CHECK(later.pass);
    REQUIRE(later.store);
    CHECK(later.entry.last_seen == t0 + 5000);
    CHECK(later.entry.first_seen == t0);
}

TEST_CASE("greylist: a retry after its window and a passed triplet unseen past expiry start over", "[greylist]") {
    const int64_t t0 = 1700000000;
    GreylistEntry waiting{t0, 0, t0};
    CHECK(greylist_decide(waiting, t0 + 300 + 3600, kTimes).pass);
    auto late = greylist_decide(waiting, t0 + 300 + 3601, kTimes);
    CHECK_FALSE(late.pass);
    CHECK(late.wait == 300);
    CHECK(late.entry.first_seen == t0 + 3901);
    CHECK(late.reason.rfind("first seen", 0) == 0);

    GreylistEntry passed{t0, t0 + 300, t0 + 1000};
    CHECK(greylist_decide(passed, t0 + 1000 + 86400, kTimes).pass);
    auto expired = greylist_decide(passed, t0 + 1000 + 86401, kTimes);
    CHECK_FALSE(expired.pass);
    CHECK(expired.entry.passed == 0);

    CHECK(greylist_alive(waiting, t0 + 3900, kTimes));
    CHECK_FALSE(greylist_alive(waiting, t0 + 3901, kTimes));
    // A record from the future (the clock went back) does not make a sender wait for ever.
    auto future = greylist_decide(GreylistEntry{t0 + 100000, 0, t0 + 100000}, t0, kTimes);
    CHECK(future.wait == 300);
    CHECK(future.entry.first_seen == t0);
}

TEST_CASE("greylist: dmarc=pass and a DNSWL listing found by the earlier checks vouch for the client", "[greylist]") {
    CHECK(greylist_known_good("Authentication-Results: mx.test;\n\tdkim=pass header.d=a.example header.s=s1 "
                              "header.b=abcd;\n\tdmarc=pass (p=reject) header.from=a.example\n") == "dmarc=pass");
    CHECK(greylist_known_good("Authentication-Results: mx.test; spf=pass smtp.mailfrom=a.example;\n\tdkim=none;\n\t"
                              "dmarc=pass (p=none) header.from=a.example\nX-Spam-Score: 0.0\n") == "dmarc=pass");
    CHECK(greylist_known_good("X-Spam-Score: -2.0\nX-Spam-Status: No, score=-2.0 required=5.0\n\t"
                              "tests=DNSBL_bl.test,\n\tDNSWL_wl.test\n") == "DNSWL_wl.test");
    CHECK(greylist_known_good("X-Spam-Status: No, score=-2.0 required=5.0 tests=DNSWL_list.dnswl.example\n") ==
          "DNSWL_list.dnswl.example");
    // What does not vouch: a failed or missing DMARC verdict, DKIM alone, a block list, no fields.
    CHECK(greylist_known_good("Authentication-Results: mx.test;\n\tdkim=pass header.d=b.example;\n\t"
                              "dmarc=fail (p=none) header.from=a.example\n") == "");
    CHECK(greylist_known_good("Authentication-Results: mx.test; dkim=pass header.d=a.example\n") == "");
    CHECK(greylist_known_good("Authentication-Results: mx.test; dmarc=passed header.from=a.example\n") == "");
    CHECK(greylist_known_good("Authentication-Results: dmarc=pass\n") == "");  // the authserv-id, not a result
    CHECK(greylist_known_good("X-Spam-Status: No, score=3.5 required=5.0 tests=DNSBL_bl.test\n") == "");
    CHECK(greylist_known_good("X-Spam-Status: No, score=0.0 required=5.0 tests=none\n") == "");
    CHECK(greylist_known_good("") == "");
}

TEST_CASE("greylist: the domain map turns greylisting on and off per recipient domain", "[greylist]") {
    auto map = GreylistSettings::parse_map("# greylisted domains\nexample.test yes\nQuiet.Test no  # not this one\n\n");
    REQUIRE(map);
    GreylistSettings s;
    s.domains = *map;
    CHECK(s.applies("bob@EXAMPLE.test"));
    CHECK_FALSE(s.applies("bob@quiet.test"));
    CHECK_FALSE(s.applies("bob@other.test"));
    CHECK(s.any());
    s.fallback = true;
    CHECK(s.applies("bob@other.test"));
    CHECK_FALSE(s.applies("bob@quiet.test"));
    GreylistSettings off;
    off.domains = {{"quiet.test", false}};
    CHECK_FALSE(off.any());
    for (const char* bad : {"example.test\n", "example.test maybe\n", "a.test yes extra\n"}) {
        auto r = GreylistSettings::parse_map(std::string("ok.test yes\n") + bad);
        INFO(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().what().find("line 2") != std::string::npos);
    }
}

TEST_CASE("greylist: the database remembers triplets across handles and prunes what outlived its time", "[greylist]") {
    test::TempDir dir;
    std::string path = dir.path + "/greylist.db";
    const int64_t t0 = 1700000000;
    std::vector<std::string> keys = {triplet_key("192.0.2.0/24", "a@x.example", "b@y.test"),
                                     triplet_key("192.0.2.0/24", "a@x.example", "c@y.test")};
    {
        GreylistDb db(path, kTimes, 1000);
        auto v = db.check(keys, t0);
        REQUIRE(v);
        REQUIRE(v->size() == 2);
        CHECK_FALSE((*v)[0].pass);
        CHECK_FALSE((*v)[1].pass);
    }
    GreylistDb again(path, kTimes, 1000);  // a restart: a new handle on the same file
    auto early = again.check({keys[0]}, t0 + 10);
    REQUIRE(early);
    CHECK((*early)[0].reason == "retry too early");
    auto retry = again.check(keys, t0 + 300);
    REQUIRE(retry);
    CHECK((*retry)[0].pass);
    CHECK((*retry)[1].pass);
    CHECK(again.size().value() == 2);
    // A third triplet that never retries goes after its window; the passed ones stay.
    REQUIRE(again.check({triplet_key("198.51.100.0/24", "spam@z.example", "b@y.test")}, t0 + 400));
    CHECK(again.size().value() == 3);
    auto pruned = again.prune(t0 + 400 + 300 + 3601);
    REQUIRE(pruned);
    CHECK(*pruned == 1);
    CHECK(again.size().value() == 2);
    CHECK(again.prune(t0 + 300 + 86401).value() == 2);
    CHECK(again.size().value() == 0);
}

TEST_CASE("greylist: the database keeps at most max_entries, waiting triplets dropped first", "[greylist]") {
    test::TempDir dir;
    GreylistDb db(dir.path + "/greylist.db", kTimes, 5);
    const int64_t t0 = 1700000000;
    std::string passed = triplet_key("192.0.2.0/24", "old@x.example", "b@y.test");
    REQUIRE(db.check({passed}, t0));
    REQUIRE(db.check({passed}, t0 + 300));
    for (int i = 0; i < 20; ++i)
        REQUIRE(db.check({triplet_key("203.0.113.0/24", "s" + std::to_string(i) + "@z.example", "b@y.test")}, t0 + 400 + i));
    CHECK(db.size().value() <= 5);
    auto v = db.check({passed}, t0 + 500);
    REQUIRE(v);
    CHECK((*v)[0].pass);  // the passed triplet outlived the flood of new ones
}

TEST_CASE("greylist: threads and handles share the database without losing records", "[greylist]") {
    test::TempDir dir;
    std::string path = dir.path + "/greylist.db";
    const int64_t t0 = 1700000000;
    // Catch's assertions are not thread-safe: the threads count their failures, the test checks them.
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            GreylistDb db(path, kTimes, 100000);
            for (int i = 0; i < 50; ++i)
                if (!db.check({triplet_key("192.0.2.0/24", "t" + std::to_string(t) + "@x.example",
                                           "r" + std::to_string(i) + "@y.test")},
                              t0))
                    ++failed;
        });
    for (auto& th : threads) th.join();
    CHECK(failed == 0);
    GreylistDb db(path, kTimes, 100000);
    CHECK(db.size().value() == 200);
}

TEST_CASE("greylist: processes share the database without losing records", "[greylist]") {
    test::TempDir dir;
    std::string path = dir.path + "/greylist.db";
    const int64_t t0 = 1700000000;
    std::vector<pid_t> children;
    for (int p = 0; p < 3; ++p) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            GreylistDb db(path, kTimes, 100000);
            int failed = 0;
            for (int i = 0; i < 40; ++i) {
                auto key = triplet_key("192.0.2.0/24", "p" + std::to_string(p) + "@x.example", "r" + std::to_string(i) + "@y.test");
                if (!db.check({key}, t0)) ++failed;
            }
            _exit(failed ? 1 : 0);
        }
        children.push_back(pid);
    }
    for (pid_t pid : children) {
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    }
    GreylistDb db(path, kTimes, 100000);
    CHECK(db.size().value() == 120);
}

TEST_CASE("greylist: a damaged database file is set aside and a new one started", "[greylist]") {
    test::TempDir dir;
    std::string path = dir.path + "/greylist.db";
    test::write_text(path, std::string(8192, 'x'));
    GreylistDb db(path, kTimes, 1000);
    auto v = db.check({triplet_key("192.0.2.0/24", "a@x.example", "b@y.test")}, 1700000000);
    REQUIRE(v);
    CHECK_FALSE((*v)[0].pass);
    struct stat st;
    CHECK(::stat((path + ".corrupt").c_str(), &st) == 0);
    CHECK(db.size().value() == 1);
}
