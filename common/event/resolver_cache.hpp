// A DNS answer cache: a Resolver around another that keeps answers for their TTL, bounded in size.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "common/event/resolver.hpp"

namespace ferry::dns {

struct CacheLimits {
    size_t entries = 10000;  // the dns_cache_size key; 0 = no cache
    uint32_t max_ttl = 3600; // the dns_cache_max_ttl key, in seconds: an answer is kept no longer
};

// The limits from the dns_cache_size and dns_cache_max_ttl keys (a template: event does not link config).
template <class Config>
CacheLimits dns_cache_limits(const Config& config) {
    auto size = config.integer("dns_cache_size");
    auto ttl = config.duration("dns_cache_max_ttl").count();
    return CacheLimits{static_cast<size_t>(std::max<int64_t>(size, 0)), static_cast<uint32_t>(std::clamp<int64_t>(ttl, 0, 86400 * 7))};
}

using CacheClock = std::function<std::chrono::steady_clock::time_point()>;

// `inner` behind a cache: ok, nxdomain and nodata answers are kept for min(ttl, max_ttl) seconds
// (a TTL of 0 is not kept); temporary and permanent failures never. The least recently used entry
// goes when the cache is full. A cached answer is still delivered later on `base`, never inside the
// call, with its remaining TTL. With limits.entries == 0 this returns `inner` itself.
std::unique_ptr<Resolver> with_cache(event_base* base, std::unique_ptr<Resolver> inner, CacheLimits limits,
                                     CacheClock now = {});

}  // namespace ferry::dns
