// Unit tests of the slice a long FETCH or SEARCH runs per turn of the loop: spent by work or by time.
#include <catch.hpp>

#include "imapd/slice.hpp"

using ferry::imap::Slice;
using namespace std::chrono_literals;

TEST_CASE("a slice is spent by its work, counted from where it started", "[imap]") {
    auto t0 = Slice::Clock::time_point{} + 1h;
    struct Row {
        uint64_t before, done;
        bool spent;
    } rows[] = {
        {0, 0, false}, {0, 99, false}, {0, 100, true}, {0, 5000, true},
        {1000, 1000, false}, {1000, 1099, false}, {1000, 1100, true},
    };
    for (const auto& r : rows) {
        Slice s(100, 2ms, r.before, t0);
        CAPTURE(r.before, r.done);
        REQUIRE(s.spent(r.done, t0) == r.spent);
    }
}

TEST_CASE("a slice is spent by its time, whatever the work", "[imap]") {
    auto t0 = Slice::Clock::time_point{} + 1h;
    Slice s(1 << 20, 2ms, 0, t0);
    REQUIRE_FALSE(s.spent(10, t0));
    REQUIRE_FALSE(s.spent(10, t0 + 1999us));
    REQUIRE(s.spent(10, t0 + 2ms));
    REQUIRE(s.spent(0, t0 + 1s));
}

TEST_CASE("a slice started now is not spent at once", "[imap]") {
    Slice s(1 << 20, 1h);
    REQUIRE_FALSE(s.spent(0));
    REQUIRE(s.spent(1 << 20));
}
