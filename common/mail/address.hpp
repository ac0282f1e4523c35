// Mail addresses: normal form, the parts of local@domain, and the syntax ferry stores and accepts.
#pragma once

#include <string>
#include <string_view>

namespace ferry {

// "Local@Example.TEST" -> "local@example.test"; local parts are compared case-insensitively.
std::string normalize_address(std::string_view address);
std::string domain_of(std::string_view address);
std::string local_part_of(std::string_view address);
// Syntax check for stored addresses: local@domain, dot-atom local part (at most 64 octets), a valid
// domain, at most 254 octets in all; no quoted local parts, spaces or control characters.
bool valid_address(std::string_view address);
// A host name of letters, digits and hyphens in dot-separated labels (1-63 octets each, 253 in all).
bool valid_domain(std::string_view domain);

}  // namespace ferry
