// Unit tests of the session's UID list as runs: sequence numbers and UIDs agree with a plain vector.
#include <catch.hpp>

#include <algorithm>
#include <random>
#include <vector>

#include "imapd/uid_list.hpp"

using ferry::imap::UidList;

namespace {

void check_same(const UidList& l, const std::vector<uint32_t>& v) {
    REQUIRE(l.size() == v.size());
    REQUIRE(std::vector<uint32_t>(l.begin(), l.end()) == v);
    for (size_t i = 0; i < v.size(); ++i) REQUIRE(l[i] == v[i]);
    for (uint32_t u = 0; u <= (v.empty() ? 3 : v.back() + 2); ++u) {
        auto pos = static_cast<size_t>(std::lower_bound(v.begin(), v.end(), u) - v.begin());
        REQUIRE(l.lower_bound(u) == pos);
        bool held = pos < v.size() && v[pos] == u;
        REQUIRE(l.find(u).has_value() == held);
        if (held) REQUIRE(*l.find(u) == pos);
    }
}

}  // namespace

TEST_CASE("imap uid list: consecutive UIDs are one run, and erasing splits and joins as a vector would", "[imap]") {
    UidList l;
    std::vector<uint32_t> v;
    for (uint32_t u = 1; u <= 1000; ++u) {
        l.push_back(u);
        v.push_back(u);
    }
    CHECK(l.runs() == 1);
    check_same(l, v);
    std::mt19937 rng(7);
    for (int k = 0; k < 300; ++k) {
        size_t i = rng() % v.size();
        l.erase_at(i);
        v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
        if (k % 50 == 0) check_same(l, v);
    }
    check_same(l, v);
    for (uint32_t u = 1200; u < 1210; u += 3) {
        l.push_back(u);
        v.push_back(u);
    }
    check_same(l, v);
    while (!v.empty()) {
        l.erase_at(0);
        v.erase(v.begin());
    }
    check_same(l, v);
    CHECK(l.runs() == 0);
}
