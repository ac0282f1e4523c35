// Modified UTF-7 mailbox names (RFC 3501 section 5.1.3) to and from UTF-8.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ferry::imap {

// UTF-8 to modified UTF-7; nothing when the input is not well-formed UTF-8.
std::optional<std::string> mutf7_encode(std::string_view utf8);
// Modified UTF-7 to UTF-8. Refuses what RFC 3501 does not allow (8-bit or control bytes, a bad
// base64 letter, non-zero padding bits, a broken surrogate pair, printable ASCII encoded, two
// encoded runs side by side, an unterminated "&"), so that each name has exactly one spelling.
std::optional<std::string> mutf7_decode(std::string_view mutf7);

}  // namespace ferry::imap
