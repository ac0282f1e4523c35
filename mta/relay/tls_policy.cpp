// Per-domain TLS policy of ferry-relay: relay_tls_policy and the relay_tls_policy_map file.
#include "mta/relay/tls_policy.hpp"

#include "common/program/config.hpp"
#include "common/program/domain_map.hpp"

namespace ferry::relay {

std::optional<TlsPolicy> parse_tls_policy(std::string_view word) {
    if (word == "none") return TlsPolicy::none;
    if (word == "may") return TlsPolicy::may;
    if (word == "encrypt") return TlsPolicy::encrypt;
    if (word == "verify") return TlsPolicy::verify;
    return std::nullopt;
}

const char* tls_policy_name(TlsPolicy p) {
    switch (p) {
        case TlsPolicy::none: return "none";
        case TlsPolicy::may: return "may";
        case TlsPolicy::encrypt: return "encrypt";
        case TlsPolicy::verify: return "verify";
    }
    return "?";
}

namespace {
bool is_tls_policy(std::string_view w) { return parse_tls_policy(w).has_value(); }
constexpr std::string_view kWant = "domain none|may|encrypt|verify";

TlsPolicyMap from_words(const DomainMap& words, TlsPolicy fallback) {
    TlsPolicyMap map(fallback);
    for (const auto& [domain, word] : words) map.set(domain, *parse_tls_policy(word));
    return map;
}
}  // namespace

Result<TlsPolicyMap> TlsPolicyMap::parse(std::string_view text, TlsPolicy fallback) {
    auto words = parse_domain_map(text, is_tls_policy, kWant);
    if (!words) return words.error();
    return from_words(*words, fallback);
}

Result<TlsPolicyMap> TlsPolicyMap::load(const std::string& path, TlsPolicy fallback) {
    auto words = read_domain_map("relay_tls_policy_map", path, is_tls_policy, kWant);
    if (!words) return words.error();
    return from_words(*words, fallback);
}

TlsPolicy TlsPolicyMap::lookup(const std::string& domain) const {
    auto it = entries_.find(domain);
    return it == entries_.end() ? fallback_ : it->second;
}

}  // namespace ferry::relay
