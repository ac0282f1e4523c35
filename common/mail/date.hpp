// RFC 5322 3.3 date-time, the one formatter for Date:, Received: and DSN date fields.
#pragma once

#include <cstdint>
#include <string>

namespace ferry::mail {

enum class Zone { local, utc };

// "Tue, 14 Nov 2023 10:00:00 +0100" in the process's time zone (TZ), or with "+0000" for utc.
// English names whatever the locale, as RFC 5322 day-name and month-name require.
std::string rfc5322_date(int64_t unix_seconds, Zone zone = Zone::local);

}  // namespace ferry::mail
