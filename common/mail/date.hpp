// RFC 5322 3.3 date-time, the one formatter for Date:, Received: and DSN date fields.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::mail {

enum class Zone { local, utc };

// "Tue, 14 Nov 2023 10:00:00 +0100" in the process's time zone (TZ), or with "+0000" for utc.
// English names whatever the locale, as RFC 5322 day-name and month-name require.
std::string rfc5322_date(int64_t unix_seconds, Zone zone = Zone::local);

struct CivilDay {
    int year = 0, month = 0, day = 0;  // month 1..12
    bool operator==(const CivilDay&) const = default;
};

// The day of a Date: field's value ("Tue, 14 Nov 2023 10:00:00 +0100", also without the day name,
// with comments or a two-digit year as RFC 5322 section 4.3 allows); time and zone are ignored, as
// IMAP's SENTBEFORE/SENTON/SENTSINCE want. Nothing when no day can be read.
std::optional<CivilDay> parse_rfc5322_day(std::string_view value);

// The moment a date-time names ("Tue, 14 Nov 2023 10:00:00 +0100", seconds optional, the obsolete
// zone names UT, GMT and the US ones of RFC 5322 4.3, others as +0000), in unix seconds; nothing
// when no day and time can be read. For the time each hop of a Received: trail took.
std::optional<int64_t> parse_rfc5322_time(std::string_view value);

}  // namespace ferry::mail
