// FNV-1a, the one hash for names that must come out the same in every process and release.
#pragma once

#include <cstdint>
#include <string_view>

namespace ferry {

// FNV-1a (Fowler/Noll/Vo) with the offset basis and prime of its width.
template <typename T, T kOffset, T kPrime>
constexpr T fnv1a(std::string_view s) {
    T h = kOffset;
    for (char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= kPrime;
    }
    return h;
}

// Short and stable, where std::hash promises neither across processes nor across releases.
// Not for anything an attacker may want to collide.
constexpr uint32_t fnv1a32(std::string_view s) { return fnv1a<uint32_t, 2166136261u, 16777619u>(s); }
constexpr uint64_t fnv1a64(std::string_view s) {
    return fnv1a<uint64_t, 14695981039346656037ull, 1099511628211ull>(s);
}

}  // namespace ferry
