// LIST and LSUB pattern matching (RFC 9051 section 6.3.9): "*" matches anything, "%" anything but the delimiter.
#pragma once

#include <string_view>

namespace ferry::imap {

// True when `name` matches `pattern`. Both are compared byte for byte (names in modified UTF-7),
// except that a first level of INBOX matches in any case. Time O(pattern × name), whatever the
// wildcards.
bool list_match(std::string_view pattern, std::string_view name, char delimiter = '/');

}  // namespace ferry::imap
