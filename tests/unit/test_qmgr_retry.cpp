// Unit tests of qmgr's retry schedule: one entry per attempt, the last one repeating.
#include <catch.hpp>

#include "common/program/config.hpp"
#include "mta/qmgr/retry.hpp"

using namespace ferry;
using std::chrono::seconds;

TEST_CASE("qmgr retry: entries by attempt, last repeats", "[qmgr]") {
    std::vector<seconds> s = {seconds(60), seconds(300), seconds(900)};
    struct Case { int attempts; long expect; };
    const Case cases[] = {{0, 60}, {1, 60}, {2, 300}, {3, 900}, {4, 900}, {1000, 900}, {-5, 60}};
    for (const auto& c : cases) {
        INFO(c.attempts);
        CHECK(qmgr::retry_delay(s, c.attempts).count() == c.expect);
    }
    CHECK(qmgr::next_attempt_time(s, 2, 1000) == 1300);
}

TEST_CASE("qmgr retry: empty schedule and zero entries have floors", "[qmgr]") {
    CHECK(qmgr::retry_delay({}, 1) == qmgr::kDefaultRetryDelay);
    CHECK(qmgr::retry_delay({seconds(0)}, 3) == qmgr::kMinRetryDelay);
}

TEST_CASE("qmgr retry: the configured default and a one-entry schedule", "[qmgr]") {
    auto c = Config::defaults("qmgr");
    auto d = c.durations("qmgr_retry_schedule");
    REQUIRE(d.size() == 7);
    CHECK(qmgr::retry_delay(d, 1).count() == 60);
    CHECK(qmgr::retry_delay(d, 7).count() == 4 * 3600);
    CHECK(qmgr::retry_delay(d, 50).count() == 4 * 3600);
    REQUIRE(c.set("qmgr_retry_schedule", "1s").ok());
    CHECK(qmgr::retry_delay(c.durations("qmgr_retry_schedule"), 9).count() == 1);
}
