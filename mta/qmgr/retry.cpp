// The retry schedule: how long a deferred recipient waits before its next delivery attempt.
#include "mta/qmgr/retry.hpp"

#include <algorithm>

namespace ferry::qmgr {

std::chrono::seconds retry_delay(const std::vector<std::chrono::seconds>& schedule, int attempts) {
    if (schedule.empty()) return kDefaultRetryDelay;
    size_t i = attempts <= 1 ? 0 : static_cast<size_t>(attempts - 1);
    i = std::min(i, schedule.size() - 1);
    return std::max(schedule[i], kMinRetryDelay);
}

int64_t next_attempt_time(const std::vector<std::chrono::seconds>& schedule, int attempts, int64_t now) {
    return now + retry_delay(schedule, attempts).count();
}

}  // namespace ferry::qmgr
