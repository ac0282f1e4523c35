// common/base: the stable hash.
#include <catch.hpp>

#include <string_view>

#include "common/base/hash.hpp"

using namespace ferry;

TEST_CASE("fnv1a gives the published FNV-1a values", "[base]") {
    struct Case {
        std::string_view text;
        uint32_t h32;
        uint64_t h64;
    };
    // Test vectors of the FNV reference (draft-eastlake-fnv, section 8).
    const Case cases[] = {
        {"", 0x811c9dc5u, 0xcbf29ce484222325ull},
        {"a", 0xe40c292cu, 0xaf63dc4c8601ec8cull},
        {"foobar", 0xbf9cf968u, 0x85944171f73967e8ull},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        CHECK(fnv1a32(c.text) == c.h32);
        CHECK(fnv1a64(c.text) == c.h64);
    }
    // Octets above 0x7f hash as unsigned, the same whatever the signedness of char.
    CHECK(fnv1a32("\xff") == ((0x811c9dc5u ^ 0xffu) * 16777619u));
}
