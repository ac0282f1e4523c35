// Small string helpers of the Sieve library: case, names, time zones, encoded-character (RFC 5228 2.4.2.4).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ferry::sieve {

std::string ascii_lower(std::string_view s);
std::string ascii_upper(std::string_view s);
// RFC 5229 3: identifier, or a number for a match variable (when numbered is allowed).
bool valid_variable_name(std::string_view name, bool numbered);
// A header field the address test may read (RFC 5228 5.1: fields holding addresses).
bool is_address_field(std::string_view name);
// A redirect address (RFC 5228 4.2): an addr-spec, or a display name and one in angle brackets;
// the address alone is returned, nullopt when there is none.
std::optional<std::string> redirect_address(std::string_view text);
inline bool valid_redirect(std::string_view text) { return redirect_address(text).has_value(); }
// RFC 5322 2.2 field-name: printable ASCII except ':', at least one.
bool valid_field_name(std::string_view name);
// "+hhmm" or "-hhmm" (RFC 5260 4.1) as minutes east of UTC.
std::optional<int> parse_zone(std::string_view zone);
// "${hex:41 42}" and "${unicode:263a}" replaced by what they encode; malformed ones stay.
std::string decode_encoded_characters(std::string_view s);
// Octets of the UTF-8 sequence starting with this octet (1 for anything invalid).
size_t utf8_length(unsigned char lead);

}  // namespace ferry::sieve
