// A recipient's life as one pure state machine: every event the scheduler sees, and what it makes of it.
#include "mta/qmgr/recipient.hpp"

#include <time.h>

#include <algorithm>

#include "mta/qmgr/bounce.hpp"
#include "mta/qmgr/retry.hpp"

namespace ferry::qmgr {

namespace {

using S = RcptStatus;

Step same(const RcptState& r, Effect e = Effect::invalid) { return {r, e}; }

// Counts a failed attempt and sets the time of the next one.
RcptState retry_later(RcptState r, S status, const std::string& reply, const Times& t) {
    r.status = status;
    r.attempts = std::min(r.attempts + 1, kMaxAttempts);
    r.next_try = t.schedule ? next_attempt_time(*t.schedule, r.attempts, t.now) : t.now + kDefaultRetryDelay.count();
    r.reply = reply;
    r.uncertain = false;
    return r;
}

Step failed(RcptState r, const std::string& reply, const std::string& dsn_status) {
    r.status = S::failed;
    r.reply = reply;
    r.dsn_status = dsn_status;
    r.next_try = 0;
    r.bounce_id.clear();
    r.uncertain = false;
    return {r, Effect::failed};
}

bool expired(const Times& t) { return t.age >= t.lifetime; }

// A temporary failure with nothing delivered: retried, or failed for good (4.4.7, RFC 3463) once the
// message is past maximal_queue_lifetime (Postfix's rule: each recipient gets one more attempt).
Step temporary(const RcptState& r, S status, const std::string& reply, const Times& t) {
    if (expired(t)) {
        Step s = failed(r, "message expired after " + duration_text(t.lifetime) + " in the queue (last error: " +
                               reply + ")", "4.4.7");
        s.effect = Effect::expired;
        return s;
    }
    return {retry_later(r, status, reply, t), Effect::deferred};
}

// Maybe delivered: retried on the schedule until an answer after the dot says which, never bounced.
Step unknown(const RcptState& r, const std::string& reply, const Times& t) {
    return {retry_later(r, S::unknown, reply, t), expired(t) ? Effect::unknown_past_lifetime : Effect::unknown};
}

Step on_handed_off(const RcptState& r) {
    if (r.status != S::queued && r.status != S::deferred && r.status != S::unknown) return same(r);
    RcptState n = r;
    n.uncertain = r.status == S::unknown;
    n.status = S::handed_off;
    return {n, Effect::none};
}

Step on_reply(const RcptState& r, const Event& e, const Times& t) {
    if (r.status != S::handed_off) return same(r);
    if (e.code >= 200 && e.code < 300) {
        // A 2xx before the dot is no delivery; LmtpClient never reports one, so it cannot be trusted.
        if (!e.after_dot) return same(r);
        RcptState n = r;
        n.status = S::delivered;
        n.reply = e.text;
        n.uncertain = false;
        return {n, Effect::delivered};
    }
    // An earlier attempt may have delivered it: a temporary failure of this one says nothing about
    // that one, before the dot (the agent did not look) or after it (the agent may still be busy with
    // it: ferry-mda's "451 4.3.0 Delivery in progress"). Only a 2xx or a 5xx resolves it.
    if (r.uncertain && e.code < 500) return unknown(r, e.text, t);
    // After the dot, a reply that is no 2xx, 4xx or 5xx says nothing about the delivery.
    if (e.after_dot && (e.code < 400 || e.code >= 600)) return unknown(r, e.text, t);
    if (e.code >= 500 && e.code < 600) return failed(r, e.text, status_of_reply(e.text, "5.0.0"));
    return temporary(r, S::deferred, e.text, t);
}

Step on_no_reply(const RcptState& r, const Event& e, const Times& t) {
    if (r.status != S::handed_off) return same(r);
    if (e.after_dot || r.uncertain) return unknown(r, e.text, t);
    return temporary(r, S::deferred, e.text, t);
}

Step on_not_attempted(const RcptState& r, const Event& e, const Times& t) {
    switch (r.status) {
        case S::unknown: return unknown(r, e.text, t);
        case S::queued:
        case S::deferred: return temporary(r, S::deferred, e.text, t);
        default: return same(r);
    }
}

Step on_expand_failed(const RcptState& r, const Event& e, const Times& t) {
    if (r.status != S::queued && r.status != S::unresolved) return same(r);
    if (e.code >= 500) return failed(r, e.text, status_of_reply(e.text, "5.0.0"));
    return temporary(r, S::unresolved, e.text, t);
}

Step on_too_many(const RcptState& r, const Times& t) {
    if (r.status != S::handed_off) return same(r);
    RcptState n = r;
    n.status = r.uncertain ? S::unknown : S::queued;
    n.next_try = t.now;
    n.uncertain = false;
    return {n, Effect::none};
}

Step on_bounce(const RcptState& r, const Event& e, const Times& t) {
    if (r.status != S::failed) return same(r);
    RcptState n = r;
    switch (e.kind) {
        case EventKind::bounce_planned:
            n.bounce_id = e.text;
            return {n, Effect::none};
        case EventKind::bounce_failed:
            n.next_try = t.schedule ? next_attempt_time(*t.schedule, 1, t.now) : t.now + kDefaultRetryDelay.count();
            return {n, Effect::none};
        default:
            n.status = S::bounced;
            n.next_try = 0;
            return {n, Effect::bounced};
    }
}

// A record saved as handed_off went out in a transaction whose end nobody recorded: maybe delivered.
Step on_restart(const RcptState& r, const Times& t) {
    if (r.status != S::handed_off) return same(r, Effect::none);
    RcptState n = r;
    n.status = S::unknown;
    n.next_try = t.now;
    n.uncertain = false;
    n.reply = "qmgr restarted during the delivery attempt";
    return {n, Effect::unknown};
}

}  // namespace

Step transition(const RcptState& r, const Event& e, const Times& t) {
    switch (e.kind) {
        case EventKind::handed_off: return on_handed_off(r);
        case EventKind::reply: return on_reply(r, e, t);
        case EventKind::no_reply: return on_no_reply(r, e, t);
        case EventKind::not_attempted: return on_not_attempted(r, e, t);
        case EventKind::expand_failed: return on_expand_failed(r, e, t);
        case EventKind::too_many: return on_too_many(r, t);
        case EventKind::bounce_planned:
        case EventKind::bounce_failed:
        case EventKind::bounce_committed: return on_bounce(r, e, t);
        case EventKind::restart: return on_restart(r, t);
    }
    return same(r);
}

Next next_action(const RcptState& r, int64_t now) {
    switch (r.status) {
        case S::queued: return Next::hand_off;
        case S::deferred:
        case S::unknown: return r.next_try <= now ? Next::hand_off : Next::wait;
        case S::unresolved: return r.next_try <= now ? Next::expand : Next::wait;
        case S::failed:
            if (r.next_try > now) return Next::wait;
            return r.bounce_id.empty() ? Next::plan_bounce : Next::commit_bounce;
        case S::handed_off: return Next::wait;
        case S::delivered:
        case S::bounced: return Next::done;
    }
    return Next::wait;
}

int64_t mono_from_wall(int64_t wall_time, int64_t wall_now, int64_t mono_now, int64_t max_delay) {
    if (wall_time == 0) return 0;
    return mono_now + std::min(wall_time - wall_now, max_delay);
}

int64_t wall_from_mono(int64_t mono_time, int64_t wall_now, int64_t mono_now) {
    if (mono_time == 0) return 0;
    return wall_now + (mono_time - mono_now);
}

int64_t arrival_on_mono(int64_t arrival_wall, int64_t wall_now, int64_t mono_now) {
    return mono_now - std::max<int64_t>(0, wall_now - arrival_wall);
}

int64_t SystemClock::mono() const {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec);
}

int64_t SystemClock::wall() const { return static_cast<int64_t>(time(nullptr)); }

}  // namespace ferry::qmgr
