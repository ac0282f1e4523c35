// IMAP dates: SEARCH's date ("1-Feb-1994") and APPEND's date-time ("01-Feb-1994 21:52:25 -0800").
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ferry::imap {

struct Date {
    int year = 0, month = 0, day = 0;   // month 1..12
    bool operator==(const Date&) const = default;
};

struct DateTime {
    Date date;
    int hour = 0, minute = 0, second = 0;
    int zone_minutes = 0;               // east of UTC, -0800 is -480
    bool operator==(const DateTime&) const = default;
    int64_t unix_time() const;          // seconds since the epoch, UTC
};

// RFC 9051 date-text (1*2DIGIT "-" month "-" 4DIGIT), the quotes already removed.
std::optional<Date> parse_date(std::string_view s);
// RFC 9051 date-time without its quotes: day is 2DIGIT or SP DIGIT; the zone is +/-HHMM.
std::optional<DateTime> parse_date_time(std::string_view s);
// Days since 1970-01-01 of a valid date.
int64_t days_from_civil(const Date& d);

}  // namespace ferry::imap
