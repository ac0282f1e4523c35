// RFC 5322 3.3 date-time, the one formatter for Date:, Received: and DSN date fields.
#include "common/mail/date.hpp"

#include <cstdio>
#include <ctime>

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

}  // namespace ferry::mail
