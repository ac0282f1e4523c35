// The message as Sieve tests see it: header fields (editable, RFC 5293), addresses, body text (RFC 5173) and dates (RFC 5260).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mda/sieve/match.hpp"
#include "mda/sieve/script.hpp"

namespace ferry::sieve {

struct HeaderField {
    std::string name;  // as written
    std::string raw;   // the value as written after the colon, folding kept
};

// The header fields of a message and its size; the body stays in the caller's bytes.
class MessageView {
public:
    explicit MessageView(std::string_view message);

    std::vector<HeaderField> fields;  // in order; editheader changes this copy
    std::string_view message;         // the whole message as given
    std::string_view body;            // after the blank line (empty when there is none)

    // Values of a field name (case-insensitive), unfolded, trimmed, RFC 2047 words decoded.
    std::vector<std::string> values(std::string_view name) const;
    bool exists(std::string_view name) const;
};

// An address of a header or the envelope, split for :localpart/:domain/:user/:detail (RFC 5233:
// the local part's first character found in `delimiters`, recipient_delimiter, separates them).
// `part` is nullopt when the address lacks it (:detail without a delimiter).
std::optional<std::string> address_part(std::string_view address, AddressPart part, std::string_view delimiters = "+");
// The addresses of an address-list header value ("local@domain" each; group names skipped).
std::vector<std::string> header_addresses(std::string_view value);

// The texts the body test looks at (RFC 5173 5): the raw body, or the decoded parts whose
// content type matches one of `types` (":text" is {"text"}); decoding spends from the budget.
std::vector<std::string> body_texts(std::string_view message, BodyTransform transform,
                                    const std::vector<std::string>& types, Budget& budget);

// An instant and the zone it was written in (minutes east of UTC).
struct DateTime {
    int64_t seconds = 0;  // since the epoch, UTC
    int zone = 0;
};
// RFC 5322 3.3 date-time (obsolete zone names included); nothing when it cannot be read.
std::optional<DateTime> parse_date_time(std::string_view value);
// A date part of RFC 5260 4.2 ("year", "date", "iso8601", "weekday", ...) of the instant shown in `zone`.
std::optional<std::string> date_part(int64_t seconds, int zone, std::string_view part);

}  // namespace ferry::sieve
