// Per-domain map files ("domain value" a line, # comments), the format every *_map key reads.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/base/result.hpp"

namespace ferry {

// Domain (lower case) to its word. `valid` says whether a value is one the key takes; `want`
// describes a good line for the error, which names the line: e.g. "domain none|may|encrypt|verify".
using DomainMap = std::map<std::string, std::string>;
Result<DomainMap> parse_domain_map(std::string_view text, const std::function<bool(std::string_view)>& valid,
                                   std::string_view want);

// The file `path` (the value of `key`) read and parsed; an empty path is an empty map. Errors name
// the key and the path: "relay_tls_policy_map /etc/ferry/tls: line 3: want ...".
Result<DomainMap> read_domain_map(std::string_view key, const std::string& path,
                                  const std::function<bool(std::string_view)>& valid, std::string_view want);

}  // namespace ferry
