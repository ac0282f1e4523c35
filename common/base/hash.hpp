// FNV-1a, the one hash for names that must come out the same in every process and release.
#pragma once

#include <cstdint>
#include <string_view>

namespace ferry {

// FNV-1a (Fowler/Noll/Vo, 32 and 64 bits): short and stable, where std::hash promises neither
// across processes nor across releases. Not for anything an attacker may want to collide.
constexpr uint32_t fnv1a32(std::string_view s) {
    uint32_t h = 2166136261u;
    for (char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= 16777619u;
    }
    return h;
}

constexpr uint64_t fnv1a64(std::string_view s) {
    uint64_t h = 14695981039346656037ull;
    for (char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= 1099511628211ull;
    }
    return h;
}

}  // namespace ferry
