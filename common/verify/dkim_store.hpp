// Where ferry keeps DKIM signing keys: <dkim_key_dir>/<domain>/<selector>.key (PEM) and <domain>/active.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/verify/dkim_key.hpp"

namespace ferry::verify::dkim {

// A selector is one or more DNS labels (letters, digits, hyphens), at most 63 octets in all.
bool valid_selector(const std::string& s);

std::string domain_dir(const std::string& key_dir, const std::string& domain);
std::string key_path(const std::string& key_dir, const std::string& domain, const std::string& selector);

// The domains holding keys, and a domain's selectors, sorted; empty when there are none.
std::vector<std::string> key_domains(const std::string& key_dir);
std::vector<std::string> key_selectors(const std::string& key_dir, const std::string& domain);

// The selector named in <domain>/active; "" when the file is absent.
Result<std::string> active_selector(const std::string& key_dir, const std::string& domain);

struct SigningKey {
    std::string selector;
    PrivateKey key;
};
// The domain's active key; nullopt when it has none, an error when its file is unreadable or bad.
Result<std::optional<SigningKey>> load_active_key(const std::string& key_dir, const std::string& domain);
Result<PrivateKey> load_key(const std::string& key_dir, const std::string& domain, const std::string& selector);

}  // namespace ferry::verify::dkim
