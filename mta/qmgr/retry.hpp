// The retry schedule: how long a deferred recipient waits before its next delivery attempt.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace ferry::qmgr {

// Shortest wait, so a "0s" entry cannot make qmgr spin on a peer that is down.
inline constexpr std::chrono::seconds kMinRetryDelay{1};
// Used when qmgr_retry_schedule is empty.
inline constexpr std::chrono::seconds kDefaultRetryDelay{300};

// The wait after the `attempts`-th failed attempt (1 = the first failure): the schedule's entry for
// that attempt, its last entry repeating once the list runs out (qmgr_retry_schedule).
std::chrono::seconds retry_delay(const std::vector<std::chrono::seconds>& schedule, int attempts);

// The unix time of the next attempt after a failure at `now`.
int64_t next_attempt_time(const std::vector<std::chrono::seconds>& schedule, int attempts, int64_t now);

}  // namespace ferry::qmgr
