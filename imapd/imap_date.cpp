// IMAP date and date-time parsing (pure).
#include "imapd/imap_date.hpp"

#include <array>

namespace ferry::imap {

namespace {

constexpr std::array<const char*, 12> kMonths = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                 "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};

bool digits(std::string_view s, size_t n, int& out) {
    if (s.size() < n) return false;
    out = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        out = out * 10 + (s[i] - '0');
    }
    return true;
}

int month_of(std::string_view s) {
    if (s.size() != 3) return 0;
    for (size_t m = 0; m < kMonths.size(); m++) {
        bool eq = true;
        for (size_t i = 0; i < 3; i++) eq &= (s[i] & ~0x20) == kMonths[m][i];
        if (eq) return int(m) + 1;
    }
    return 0;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool valid_day(const Date& d) {
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int max = kDays[d.month - 1] + (d.month == 2 && leap(d.year) ? 1 : 0);
    return d.day >= 1 && d.day <= max;
}

// "-" month "-" 4DIGIT after the day.
std::optional<Date> month_year(std::string_view s, int day) {
    if (s.size() != 9 || s[0] != '-' || s[4] != '-') return std::nullopt;
    Date d;
    d.day = day;
    d.month = month_of(s.substr(1, 3));
    if (d.month == 0 || !digits(s.substr(5), 4, d.year) || !valid_day(d)) return std::nullopt;
    return d;
}

}  // namespace

std::optional<Date> parse_date(std::string_view s) {
    size_t dash = s.find('-');
    if (dash != 1 && dash != 2) return std::nullopt;
    int day = 0;
    if (!digits(s, dash, day)) return std::nullopt;
    return month_year(s.substr(dash), day);
}

std::optional<DateTime> parse_date_time(std::string_view s) {
    // "dd-Mon-yyyy hh:mm:ss +zzzz" is 26 bytes.
    if (s.size() != 26) return std::nullopt;
    int day = 0;
    if (s[0] == ' ') {
        if (!digits(s.substr(1), 1, day)) return std::nullopt;
    } else if (!digits(s, 2, day)) {
        return std::nullopt;
    }
    auto d = month_year(s.substr(2, 9), day);
    if (!d || s[11] != ' ' || s[14] != ':' || s[17] != ':' || s[20] != ' ') return std::nullopt;
    DateTime t;
    t.date = *d;
    int zh = 0, zm = 0;
    if (!digits(s.substr(12), 2, t.hour) || !digits(s.substr(15), 2, t.minute) || !digits(s.substr(18), 2, t.second))
        return std::nullopt;
    if ((s[21] != '+' && s[21] != '-') || !digits(s.substr(22), 2, zh) || !digits(s.substr(24), 2, zm)) return std::nullopt;
    // A leap second (60) is allowed by RFC 5322's time-of-day.
    if (t.hour > 23 || t.minute > 59 || t.second > 60 || zm > 59) return std::nullopt;
    t.zone_minutes = (zh * 60 + zm) * (s[21] == '-' ? -1 : 1);
    return t;
}

// Howard Hinnant's days_from_civil.
int64_t days_from_civil(const Date& d) {
    int64_t y = d.year - (d.month <= 2 ? 1 : 0);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = (d.month + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d.day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t DateTime::unix_time() const {
    return days_from_civil(date) * 86400 + hour * 3600 + minute * 60 + second - int64_t(zone_minutes) * 60;
}

}  // namespace ferry::imap
