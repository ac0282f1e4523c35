// RFC 5322 3.3 date-time, the one formatter for Date:, Received: and DSN date fields.
#include "common/mail/date.hpp"

#include <strings.h>

#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <utility>

namespace ferry::mail {

std::string rfc5322_date(int64_t unix_seconds, Zone zone) {
    static const char* const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::time_t when = static_cast<std::time_t>(unix_seconds);
    std::tm t{};
    if (zone == Zone::utc) gmtime_r(&when, &t);
    else localtime_r(&when, &t);
    long off = zone == Zone::utc ? 0 : t.tm_gmtoff / 60;  // minutes east of UTC
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", days[t.tm_wday], t.tm_mday,
                  months[t.tm_mon], t.tm_year + 1900, t.tm_hour, t.tm_min, t.tm_sec, sign, off / 60, off % 60);
    return buf;
}

namespace {

// The next run of letters or digits of `s` from `pos`, skipping blanks, commas and comments.
std::string_view next_word(std::string_view s, size_t& pos) {
    int depth = 0;
    while (pos < s.size()) {
        char c = s[pos];
        if (c == '(') ++depth;
        else if (c == ')' && depth > 0) --depth;
        else if (depth == 0 && std::isalnum(static_cast<unsigned char>(c))) break;
        ++pos;
    }
    size_t start = pos;
    while (pos < s.size() && std::isalnum(static_cast<unsigned char>(s[pos]))) ++pos;
    return s.substr(start, pos - start);
}

bool number(std::string_view w, int& out) {
    if (w.empty() || w.size() > 4) return false;
    auto [p, ec] = std::from_chars(w.data(), w.data() + w.size(), out);
    return ec == std::errc() && p == w.data() + w.size();
}

}  // namespace

std::optional<CivilDay> parse_rfc5322_day(std::string_view value) {
    static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    size_t pos = 0;
    std::string_view w = next_word(value, pos);
    if (!w.empty() && std::isalpha(static_cast<unsigned char>(w[0]))) w = next_word(value, pos);  // the day name
    CivilDay d;
    if (!number(w, d.day) || d.day < 1 || d.day > 31) return std::nullopt;
    w = next_word(value, pos);
    for (int i = 0; i < 12; ++i)
        if (w.size() == 3 && strncasecmp(w.data(), months[i], 3) == 0) d.month = i + 1;
    if (d.month == 0) return std::nullopt;
    w = next_word(value, pos);
    if (!number(w, d.year)) return std::nullopt;
    // RFC 5322 section 4.3: two digits are 19xx from 50 on, 20xx below; three add 1900.
    if (w.size() == 2) d.year += d.year < 50 ? 2000 : 1900;
    else if (w.size() == 3) d.year += 1900;
    return d;
}

namespace {

// The zone of RFC 5322 3.3 and 4.3 in minutes east of UTC, read from `pos`.
int zone_minutes(std::string_view s, size_t pos) {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t')) ++pos;
    if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        int hhmm = 0;
        if (!number(s.substr(pos + 1, 4), hhmm) || pos + 5 > s.size()) return 0;
        int minutes = hhmm / 100 * 60 + hhmm % 100;
        return s[pos] == '-' ? -minutes : minutes;
    }
    static const std::pair<const char*, int> names[] = {{"EDT", -4}, {"EST", -5}, {"CDT", -5}, {"CST", -6},
                                                        {"MDT", -6}, {"MST", -7}, {"PDT", -7}, {"PST", -8}};
    for (const auto& [name, hours] : names)
        if (s.size() >= pos + 3 && strncasecmp(s.data() + pos, name, 3) == 0) return hours * 60;
    return 0;
}

}  // namespace

std::optional<int64_t> parse_rfc5322_time(std::string_view value) {
    auto day = parse_rfc5322_day(value);
    if (!day) return std::nullopt;
    // The time follows the year: the fourth word after an optional day name.
    size_t pos = 0;
    std::string_view w = next_word(value, pos);
    if (!w.empty() && std::isalpha(static_cast<unsigned char>(w[0]))) w = next_word(value, pos);
    next_word(value, pos);  // month
    next_word(value, pos);  // year
    int hour = 0, minute = 0, second = 0;
    if (!number(next_word(value, pos), hour) || pos >= value.size() || value[pos] != ':') return std::nullopt;
    if (!number(next_word(value, pos), minute)) return std::nullopt;
    if (pos < value.size() && value[pos] == ':' && !number(next_word(value, pos), second)) return std::nullopt;
    if (hour > 23 || minute > 59 || second > 60) return std::nullopt;
    std::tm t{};
    t.tm_year = day->year - 1900;
    t.tm_mon = day->month - 1;
    t.tm_mday = day->day;
    t.tm_hour = hour;
    t.tm_min = minute;
    t.tm_sec = second;
    return static_cast<int64_t>(timegm(&t)) - zone_minutes(value, pos) * 60;
}

}  // namespace ferry::mail
