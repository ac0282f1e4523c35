// A recipient's life as one pure state machine: every event the scheduler sees, and what it makes of it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/spool/state.hpp"

namespace ferry::qmgr {

// What happened to a recipient. The scheduler does the I/O and reports it here; transition() alone
// decides the recipient's next state, so every path through a delivery is in one place and tested.
enum class EventKind {
    handed_off,        // its RCPT is about to go out in an LMTP transaction (saved before it does)
    reply,             // the delivery agent answered for it: `code` 2xx, 4xx or 5xx, `after_dot` as below
    no_reply,          // the transaction ended without its answer; `after_dot`: the final dot had been sent
    not_attempted,     // a temporary failure before any hand-off (no route, agent down, queue file unreadable)
    expand_failed,     // alias expansion failed: `code` 4xx temporarily, 5xx for good
    too_many,          // "452 4.5.3" while the agent took others: due again at once, no attempt counted
    bounce_planned,    // the failed recipient's report will be queued under queue id `text`
    bounce_failed,     // queuing that report failed: tried again later
    bounce_committed,  // its report is in queue/ (or none is due: null sender)
    restart,           // qmgr starts with this record from the state file
};

struct Event {
    EventKind kind;
    int code = 0;            // reply, expand_failed: the reply code (0 = none)
    bool after_dot = false;  // reply, no_reply: the final dot of the data had been sent
    std::string text;        // the reply or reason; bounce_planned: the bounce's queue id
};

// The times a transition needs, all in seconds on one monotonic clock.
struct Times {
    int64_t now = 0;
    int64_t age = 0;        // of the message, since it arrived
    int64_t lifetime = 0;   // maximal_queue_lifetime
    const std::vector<std::chrono::seconds>* schedule = nullptr;  // qmgr_retry_schedule
};

// What the scheduler reports (logs) after a step; `invalid` changes nothing (an event the state
// cannot take: a bug in the caller, never peer input).
enum class Effect {
    none, delivered, deferred, unknown, unknown_past_lifetime, failed, expired, bounced, invalid
};

struct Step {
    RcptState next;
    Effect effect;
};

Step transition(const RcptState& r, const Event& e, const Times& t);

// What the scheduler is to do next for a recipient as saved (also right after a restart).
enum class Next {
    wait,            // nothing before next_try (or in flight)
    hand_off,        // due for a delivery attempt
    expand,          // alias expansion is to be tried again
    plan_bounce,     // failed: choose the bounce's queue id and save it before anything is queued
    commit_bounce,   // failed with a bounce id: queue it under that id unless queue/<id> exists
    done,            // final
};
Next next_action(const RcptState& r, int64_t now);

// Wall-clock times of the state file and monotonic times in memory (ferry-spool(5)).
// A saved retry time is taken as at most `max_delay` ahead, so a clock stepped forward before a
// save cannot park a recipient; 0 (no time) stays 0.
int64_t mono_from_wall(int64_t wall_time, int64_t wall_now, int64_t mono_now, int64_t max_delay);
int64_t wall_from_mono(int64_t mono_time, int64_t wall_now, int64_t mono_now);
// A message's arrival on the monotonic clock: its age from the wall clock, never below 0.
int64_t arrival_on_mono(int64_t arrival_wall, int64_t wall_now, int64_t mono_now);

// Two clocks in seconds: monotonic for schedules, wall for what people see. Injectable for tests.
class Clock {
public:
    virtual ~Clock() = default;
    virtual int64_t mono() const = 0;
    virtual int64_t wall() const = 0;
};
class SystemClock final : public Clock {
public:
    int64_t mono() const override;
    int64_t wall() const override;
};

}  // namespace ferry::qmgr
