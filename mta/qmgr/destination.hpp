// Per-destination scheduling state of qmgr: transactions in flight, start rate, and back-off of a destination that is down.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/smtp/reply.hpp"

namespace ferry::qmgr {

// A cache in memory: a restart forgets it (ferry-qmgr(8), SCHEDULING). Times are monotonic seconds.
class Destinations {
public:
    enum class Gate {
        open,  // a transaction may start now
        busy,  // the concurrency limit is reached: wait for one to end
        rate,  // qmgr_destination_rate_delay: not before `until`
        dead,  // held back after failures: not before `until`
    };
    Destinations(size_t concurrency, int64_t rate_delay, const std::vector<std::chrono::seconds>* schedule);

    Gate gate(const std::string& dest, int64_t now, int64_t& until) const;
    void started(const std::string& dest, int64_t now);
    // A transaction started() that never began (its state could not be saved, the agent is down):
    // its slot is free again, and the destination's record of failures is left as it was.
    void cancelled(const std::string& dest);
    // `down`: the transaction failed as a whole for a reason of the destination's (no host answered).
    // Returns true when this makes the destination dead.
    bool finished(const std::string& dest, int64_t now, bool down);
    // True once per dead period: whether to log that recipients wait for it.
    bool first_hold_notice(const std::string& dest);
    size_t in_flight(const std::string& dest) const;
    // How many more transactions the destination takes now by its concurrency limit (1 while it is
    // being probed after failures).
    size_t free_slots(const std::string& dest) const;
    size_t size() const { return table_.size(); }

private:
    struct State {
        size_t in_flight = 0;
        int64_t last_start = -1;
        int failures = 0;        // consecutive transactions that found the destination down
        int64_t dead_until = 0;
        bool noticed = false;    // the hold was logged for this dead period
    };
    void forget_if_idle(const std::string& dest, int64_t now);

    size_t concurrency_;
    int64_t rate_delay_;
    const std::vector<std::chrono::seconds>* schedule_;
    std::map<std::string, State> table_;
};

// Whether a reply from ferry-relay says no host of the destination could be reached: a 4xx with a
// network or routing status (4.4.x, RFC 3463) that no peer sent ("... said: ..." quotes a peer).
bool destination_down(const smtp::Reply& reply);

// The host a ferry-relay reply names ("delivered to HOST: ...", "<rcpt>: HOST said: ..."), or
// "ferry-relay" when it names none.
std::string relay_host_of(const std::string& text);

}  // namespace ferry::qmgr
