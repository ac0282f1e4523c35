// Per-domain TLS policy of ferry-relay: relay_tls_policy and the relay_tls_policy_map file.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.hpp"

namespace ferry::relay {

// none: never STARTTLS; may: STARTTLS when offered, any certificate; encrypt: TLS or no transfer;
// verify: TLS with a trusted certificate that matches the MX host name, or no transfer.
enum class TlsPolicy { none, may, encrypt, verify };

std::optional<TlsPolicy> parse_tls_policy(std::string_view word);
const char* tls_policy_name(TlsPolicy p);

class TlsPolicyMap {
public:
    explicit TlsPolicyMap(TlsPolicy fallback = TlsPolicy::may) : fallback_(fallback) {}
    // "domain  none|may|encrypt|verify" per line; '#' comments and blank lines are skipped.
    // The error names the line that is wrong.
    static Result<TlsPolicyMap> parse(std::string_view text, TlsPolicy fallback);
    static Result<TlsPolicyMap> load(const std::string& path, TlsPolicy fallback);

    // The policy for a lower-case domain: its own entry, else the default.
    TlsPolicy lookup(const std::string& domain) const;
    void set(const std::string& domain, TlsPolicy p) { entries_[domain] = p; }

private:
    TlsPolicy fallback_;
    std::map<std::string, TlsPolicy> entries_;
};

}  // namespace ferry::relay
