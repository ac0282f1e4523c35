// Per-domain TLS policy of ferry-relay: relay_tls_policy and the relay_tls_policy_map file.
#include "mta/relay/tls_policy.hpp"

#include <cctype>
#include <fstream>
#include <sstream>

#include "common/program/config.hpp"

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

Result<TlsPolicyMap> TlsPolicyMap::parse(std::string_view text, TlsPolicy fallback) {
    TlsPolicyMap map(fallback);
    std::istringstream in{std::string(text)};
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        auto words = split_list(line);
        if (words.empty()) continue;
        auto policy = words.size() == 2 ? parse_tls_policy(words[1]) : std::nullopt;
        if (!policy)
            return make_error(0, "", "line " + std::to_string(n) + ": want \"domain none|may|encrypt|verify\"");
        std::string domain = words[0];
        for (char& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        map.set(domain, *policy);
    }
    return map;
}

Result<TlsPolicyMap> TlsPolicyMap::load(const std::string& path, TlsPolicy fallback) {
    if (path.empty()) return TlsPolicyMap(fallback);
    std::ifstream f(path);
    if (!f) return sys_error("cannot read relay_tls_policy_map " + path);
    std::stringstream text;
    text << f.rdbuf();
    auto map = parse(text.str(), fallback);
    if (!map) return make_error(0, "", path + ": " + map.error().what());
    return map;
}

TlsPolicy TlsPolicyMap::lookup(const std::string& domain) const {
    auto it = entries_.find(domain);
    return it == entries_.end() ? fallback_ : it->second;
}

}  // namespace ferry::relay
