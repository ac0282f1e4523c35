// qmgr's per-destination table: concurrency, rate delay, back-off of a dead destination, and reading relay replies.
#include <catch.hpp>

#include "mta/qmgr/destination.hpp"

using namespace ferry::qmgr;
using std::chrono::seconds;
using G = Destinations::Gate;

TEST_CASE("destinations: concurrency limit per domain", "[qmgr][destination]") {
    std::vector<seconds> sched{seconds(60), seconds(300)};
    Destinations d(2, 0, &sched);
    int64_t until = 0;
    CHECK(d.gate("a.test", 100, until) == G::open);
    d.started("a.test", 100);
    d.started("a.test", 100);
    CHECK(d.gate("a.test", 100, until) == G::busy);
    CHECK(d.gate("b.test", 100, until) == G::open);
    d.finished("a.test", 101, false);
    CHECK(d.gate("a.test", 101, until) == G::open);
    d.finished("a.test", 101, false);
    CHECK(d.size() == 0);
}

TEST_CASE("destinations: rate delay between starts", "[qmgr][destination]") {
    std::vector<seconds> sched{seconds(60)};
    Destinations d(10, 5, &sched);
    int64_t until = 0;
    d.started("a.test", 100);
    CHECK(d.gate("a.test", 102, until) == G::rate);
    // Whole seconds: at least the delay, never less, so one more second.
    CHECK(until == 106);
    CHECK(d.gate("a.test", 105, until) == G::rate);
    CHECK(d.gate("a.test", 106, until) == G::open);
}

TEST_CASE("destinations: back-off grows along the schedule and resets on success", "[qmgr][destination]") {
    std::vector<seconds> sched{seconds(60), seconds(300)};
    Destinations d(20, 0, &sched);
    int64_t until = 0;
    d.started("dead.test", 0);
    CHECK(d.finished("dead.test", 10, true));
    CHECK(d.gate("dead.test", 20, until) == G::dead);
    CHECK(until == 70);
    CHECK(d.first_hold_notice("dead.test"));
    CHECK_FALSE(d.first_hold_notice("dead.test"));
    // After the back-off one probe goes; the others wait for its outcome.
    CHECK(d.gate("dead.test", 70, until) == G::open);
    d.started("dead.test", 70);
    CHECK(d.gate("dead.test", 70, until) == G::busy);
    CHECK(d.finished("dead.test", 71, true));
    CHECK(d.gate("dead.test", 72, until) == G::dead);
    CHECK(until == 371);
    d.started("dead.test", 371);
    d.finished("dead.test", 372, false);
    CHECK(d.gate("dead.test", 372, until) == G::open);
    CHECK(d.size() == 0);
}

TEST_CASE("destinations: a transaction in flight when another failed does not extend the dead period twice", "[qmgr][destination]") {
    std::vector<seconds> sched{seconds(60)};
    Destinations d(20, 0, &sched);
    d.started("x.test", 0);
    d.started("x.test", 0);
    CHECK(d.finished("x.test", 1, true));
    CHECK_FALSE(d.finished("x.test", 2, true));
}

TEST_CASE("destination_down reads ferry-relay's replies", "[qmgr][destination]") {
    ferry::smtp::Reply refused{451, "4.4.1", "451 4.4.1 <a@x.test>: connect to 127.0.0.1[127.0.0.1]:9: Connection refused", {}};
    ferry::smtp::Reply dns{451, "", "451 4.4.3 x.test: DNS lookup failed temporarily", {}};
    ferry::smtp::Reply peer{451, "4.4.2", "451 4.4.2 <a@x.test>: host mx.x.test[127.0.0.5] said: 421 4.4.2 busy", {}};
    ferry::smtp::Reply greylist{450, "4.2.0", "450 4.2.0 <a@x.test>: mx.x.test said: 450 4.2.0 greylisted", {}};
    ferry::smtp::Reply bounce{550, "5.1.1", "550 5.1.1 <a@x.test>: mx.x.test said: 550 no such user", {}};
    ferry::smtp::Reply ok{250, "2.0.0", "250 2.0.0 <a@x.test>: delivered to mx.x.test[127.0.0.5]:25: 250 ok", {}};
    CHECK(destination_down(refused));
    CHECK(destination_down(dns));
    CHECK_FALSE(destination_down(peer));
    CHECK_FALSE(destination_down(greylist));
    CHECK_FALSE(destination_down(bounce));
    CHECK_FALSE(destination_down(ok));
}

TEST_CASE("relay_host_of names the peer of a ferry-relay reply", "[qmgr][destination]") {
    CHECK(relay_host_of("250 2.0.0 <a@x.test>: delivered to host mx.x.test[127.0.0.5]:2525: 250 ok") ==
          "mx.x.test[127.0.0.5]:2525");
    CHECK(relay_host_of("550 5.1.1 <a@x.test>: host mx.x.test[127.0.0.5] said: 550 no such user") ==
          "mx.x.test[127.0.0.5]");
    CHECK(relay_host_of("451 4.4.2 <a@x.test>: odd text said: something") == "ferry-relay");
    CHECK(relay_host_of("451 4.4.3 x.test: DNS lookup failed temporarily") == "ferry-relay");
    CHECK(relay_host_of("") == "ferry-relay");
}

TEST_CASE("destinations: free slots are what the scheduler may wake of a destination's waiting messages", "[qmgr][destination]") {
    std::vector<seconds> sched{seconds(60)};
    Destinations d(3, 0, &sched);
    CHECK(d.free_slots("a.test") == 3);
    d.started("a.test", 100);
    CHECK(d.free_slots("a.test") == 2);
    d.started("a.test", 100);
    d.started("a.test", 100);
    CHECK(d.free_slots("a.test") == 0);
    // A failure leaves one probe at a time: nothing is free while the others are still in flight.
    d.finished("a.test", 101, true);
    CHECK(d.free_slots("a.test") == 0);
    d.finished("a.test", 101, true);
    d.finished("a.test", 101, true);
    CHECK(d.free_slots("a.test") == 1);
}
