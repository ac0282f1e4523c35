// Unit tests of the recipient state machine: every transition from a table, every crash point between them.
#include <catch.hpp>

#include <tuple>

#include "mta/qmgr/recipient.hpp"

using namespace ferry;
using namespace ferry::qmgr;
using S = RcptStatus;
using K = EventKind;

namespace {

const std::vector<std::chrono::seconds> kSchedule{std::chrono::seconds(60), std::chrono::seconds(600)};
constexpr int64_t kNow = 100000, kLifetime = 86400;

RcptState rcpt(S s, bool uncertain = false) {
    RcptState r{0, s, 2, 0, "a@example.test", "a@example.test", "earlier"};
    r.uncertain = uncertain;
    if (s == S::failed || s == S::bounced) r.dsn_status = "5.1.1";
    return r;
}

Times at(bool expired) { return Times{kNow, expired ? kLifetime : kLifetime - 1, kLifetime, &kSchedule}; }

struct Row {
    const char* what;
    S from;
    bool uncertain;     // handed_off from unknown
    Event event;
    bool expired;       // the message is past maximal_queue_lifetime
    S to;
    Effect effect;
};

Event reply(int code, bool after_dot) { return Event{K::reply, code, after_dot, std::to_string(code) + " x"}; }
Event no_reply(bool after_dot) { return Event{K::no_reply, 0, after_dot, "lost connection"}; }

const Row kRows[] = {
    // The hand-off: from every state that may be tried.
    {"queued handed off", S::queued, false, {K::handed_off}, false, S::handed_off, Effect::none},
    {"deferred handed off", S::deferred, false, {K::handed_off}, false, S::handed_off, Effect::none},
    {"unknown handed off", S::unknown, false, {K::handed_off}, false, S::handed_off, Effect::none},
    {"handed off twice", S::handed_off, false, {K::handed_off}, false, S::handed_off, Effect::invalid},
    {"delivered handed off", S::delivered, false, {K::handed_off}, false, S::delivered, Effect::invalid},
    {"failed handed off", S::failed, false, {K::handed_off}, false, S::failed, Effect::invalid},
    {"bounced handed off", S::bounced, false, {K::handed_off}, false, S::bounced, Effect::invalid},
    {"unresolved handed off", S::unresolved, false, {K::handed_off}, false, S::unresolved, Effect::invalid},
    // Answers after the dot decide, whatever came before.
    {"2xx after dot", S::handed_off, false, reply(250, true), false, S::delivered, Effect::delivered},
    {"2xx after dot, was unknown", S::handed_off, true, reply(250, true), true, S::delivered, Effect::delivered},
    {"2xx before dot is no delivery", S::handed_off, false, reply(250, false), false, S::handed_off, Effect::invalid},
    {"4xx after dot", S::handed_off, false, reply(451, true), false, S::deferred, Effect::deferred},
    {"4xx after dot, expired", S::handed_off, false, reply(451, true), true, S::failed, Effect::expired},
    // ferry-mda's "451 4.3.0 Delivery in progress": the earlier attempt may still deliver it.
    {"4xx after dot, was unknown", S::handed_off, true, reply(451, true), false, S::unknown, Effect::unknown},
    {"4xx after dot, was unknown, expired", S::handed_off, true, reply(451, true), true, S::unknown,
     Effect::unknown_past_lifetime},
    {"5xx after dot", S::handed_off, false, reply(550, true), false, S::failed, Effect::failed},
    {"5xx after dot, was unknown", S::handed_off, true, reply(552, true), false, S::failed, Effect::failed},
    {"3xx after dot says nothing", S::handed_off, false, reply(354, true), true, S::unknown,
     Effect::unknown_past_lifetime},
    // Answers before the dot (RCPT, MAIL, DATA): nothing delivered in this transaction.
    {"4xx before dot", S::handed_off, false, reply(450, false), false, S::deferred, Effect::deferred},
    {"4xx before dot, expired", S::handed_off, false, reply(450, false), true, S::failed, Effect::expired},
    {"5xx before dot", S::handed_off, false, reply(550, false), false, S::failed, Effect::failed},
    {"4xx before dot, was unknown", S::handed_off, true, reply(450, false), true, S::unknown,
     Effect::unknown_past_lifetime},
    // The account is gone: nothing can deliver it now, and nobody can read an earlier copy.
    {"5xx before dot, was unknown", S::handed_off, true, reply(550, false), false, S::failed, Effect::failed},
    // No answer: before the dot a temporary failure, after it an unknown outcome that never expires.
    {"no reply before dot", S::handed_off, false, no_reply(false), false, S::deferred, Effect::deferred},
    {"no reply before dot, expired", S::handed_off, false, no_reply(false), true, S::failed, Effect::expired},
    {"no reply before dot, was unknown", S::handed_off, true, no_reply(false), true, S::unknown,
     Effect::unknown_past_lifetime},
    {"no reply after dot", S::handed_off, false, no_reply(true), false, S::unknown, Effect::unknown},
    {"no reply after dot, expired", S::handed_off, false, no_reply(true), true, S::unknown,
     Effect::unknown_past_lifetime},
    {"reply when not handed off", S::queued, false, reply(250, true), false, S::queued, Effect::invalid},
    {"no reply when not handed off", S::deferred, false, no_reply(true), false, S::deferred, Effect::invalid},
    // Failures before any hand-off (no route, agent refused the connection).
    {"queued not attempted", S::queued, false, {K::not_attempted, 0, false, "no relay"}, false, S::deferred,
     Effect::deferred},
    {"deferred not attempted, expired", S::deferred, false, {K::not_attempted}, true, S::failed, Effect::expired},
    {"unknown not attempted, expired", S::unknown, false, {K::not_attempted}, true, S::unknown,
     Effect::unknown_past_lifetime},
    {"failed not attempted", S::failed, false, {K::not_attempted}, false, S::failed, Effect::invalid},
    // Alias expansion.
    {"expansion fails for now", S::queued, false, {K::expand_failed, 451}, false, S::unresolved, Effect::deferred},
    {"expansion fails again", S::unresolved, false, {K::expand_failed, 451}, false, S::unresolved, Effect::deferred},
    {"expansion fails, expired", S::unresolved, false, {K::expand_failed, 451}, true, S::failed, Effect::expired},
    {"expansion fails for good", S::unresolved, false, {K::expand_failed, 554}, false, S::failed, Effect::failed},
    {"expansion of a delivered one", S::delivered, false, {K::expand_failed, 451}, false, S::delivered,
     Effect::invalid},
    // 452 4.5.3 with progress: sent again at once, as it was.
    {"too many", S::handed_off, false, {K::too_many}, true, S::queued, Effect::none},
    {"too many, was unknown", S::handed_off, true, {K::too_many}, true, S::unknown, Effect::none},
    {"too many when queued", S::queued, false, {K::too_many}, false, S::queued, Effect::invalid},
    // The bounce: planned, failed, committed; only for a failed recipient.
    {"bounce planned", S::failed, false, {K::bounce_planned, 0, false, "B1"}, false, S::failed, Effect::none},
    {"bounce failed", S::failed, false, {K::bounce_failed}, false, S::failed, Effect::none},
    {"bounce committed", S::failed, false, {K::bounce_committed}, false, S::bounced, Effect::bounced},
    {"bounce of a delivered one", S::delivered, false, {K::bounce_committed}, false, S::delivered, Effect::invalid},
    {"bounce of an unknown one", S::unknown, false, {K::bounce_planned, 0, false, "B1"}, true, S::unknown,
     Effect::invalid},
    {"bounced again", S::bounced, false, {K::bounce_committed}, false, S::bounced, Effect::invalid},
    // A restart: only a recipient in flight changes, to unknown.
    {"restart handed off", S::handed_off, false, {K::restart}, true, S::unknown, Effect::unknown},
    {"restart queued", S::queued, false, {K::restart}, false, S::queued, Effect::none},
    {"restart deferred", S::deferred, false, {K::restart}, false, S::deferred, Effect::none},
    {"restart unknown", S::unknown, false, {K::restart}, true, S::unknown, Effect::none},
    {"restart delivered", S::delivered, false, {K::restart}, false, S::delivered, Effect::none},
    {"restart failed", S::failed, false, {K::restart}, false, S::failed, Effect::none},
    {"restart bounced", S::bounced, false, {K::restart}, false, S::bounced, Effect::none},
    {"restart unresolved", S::unresolved, false, {K::restart}, false, S::unresolved, Effect::none},
};

}  // namespace

TEST_CASE("qmgr recipient: every transition", "[qmgr]") {
    for (const Row& row : kRows) {
        INFO(row.what);
        RcptState r = rcpt(row.from, row.uncertain);
        Step step = transition(r, row.event, at(row.expired));
        CHECK(status_name(step.next.status) == std::string(status_name(row.to)));
        CHECK(step.effect == row.effect);
        if (step.effect == Effect::invalid) {
            CHECK(step.next.reply == r.reply);  // nothing changes
            CHECK(step.next.attempts == r.attempts);
        }
        if (step.effect == Effect::deferred || step.effect == Effect::unknown ||
            step.effect == Effect::unknown_past_lifetime) {
            if (row.event.kind != K::restart) {
                CHECK(step.next.attempts == r.attempts + 1);
                CHECK(step.next.next_try == kNow + 600);  // the schedule's entry for the third failure
            } else {
                CHECK(step.next.next_try <= kNow);  // due at once
            }
        }
        if (step.next.status == S::failed && step.effect != Effect::invalid && step.effect != Effect::none) {
            CHECK(step.next.bounce_id.empty());
            CHECK(step.next.dsn_status == (row.effect == Effect::expired ? "4.4.7" : std::string(1, row.event.text.empty() ? '5' : row.event.text[0]) + ".0.0"));
        }
        // Only a hand-off remembers that the recipient may have been delivered before.
        if (step.next.status == S::handed_off) CHECK(step.next.uncertain == (row.from == S::unknown || row.uncertain));
        else CHECK_FALSE(step.next.uncertain);
    }
}

TEST_CASE("qmgr recipient: an unknown outcome is never turned into a bounce", "[qmgr]") {
    // Whatever fails temporarily, at any age, a recipient that may have been delivered stays
    // unknown: only a 2xx or 5xx answer resolves it.
    const Event events[] = {no_reply(false), no_reply(true), reply(450, false), reply(451, true),
                            Event{K::not_attempted, 0, false, "agent down"}};
    RcptState r = rcpt(S::unknown);
    for (int round = 0; round < 20; ++round)
        for (const Event& e : events) {
            Times t{kNow + round * 1000, kLifetime * (round + 1), kLifetime, &kSchedule};
            if (e.kind != K::not_attempted) {
                r = transition(r, Event{K::handed_off}, t).next;
                REQUIRE(r.status == S::handed_off);
            }
            r = transition(r, e, t).next;
            REQUIRE(r.status == S::unknown);
            REQUIRE(r.next_try > t.now);
        }
    CHECK(transition(transition(r, Event{K::handed_off}, at(true)).next, reply(250, true), at(true)).next.status ==
          S::delivered);
}

TEST_CASE("qmgr recipient: what a restart does at every crash point", "[qmgr]") {
    // A crash can come between any two saves; the state file then holds one of these records, and
    // the restarted scheduler's next action for it must neither lose nor repeat a step.
    struct Crash {
        const char* where;
        RcptState saved;
        S after_restart;
        Next next;
    };
    RcptState planned = rcpt(S::failed);
    planned.bounce_id = "B1";
    RcptState bounced = rcpt(S::bounced);
    bounced.bounce_id = "B1";
    RcptState deferred = rcpt(S::deferred);
    deferred.next_try = kNow + 60;
    const Crash crashes[] = {
        {"before the first save (queued)", rcpt(S::queued), S::queued, Next::hand_off},
        {"after handed_off was saved, before or after the agent's commit", rcpt(S::handed_off), S::unknown,
         Next::hand_off},
        {"after delivered was saved", rcpt(S::delivered), S::delivered, Next::done},
        {"after deferred was saved", deferred, S::deferred, Next::wait},
        {"after failed was saved, before its bounce id", rcpt(S::failed), S::failed, Next::plan_bounce},
        {"after the bounce id was saved, before or after the bounce's commit", planned, S::failed,
         Next::commit_bounce},
        {"after bounced was saved", bounced, S::bounced, Next::done},
        {"during alias expansion retries", rcpt(S::unresolved), S::unresolved, Next::expand},
    };
    for (const Crash& c : crashes) {
        INFO(c.where);
        Step s = transition(c.saved, Event{K::restart}, at(true));
        CHECK(s.next.status == c.after_restart);
        CHECK(next_action(s.next, kNow) == c.next);
        // A failed recipient is never handed off again: the only way on is its bounce.
        if (c.saved.status == S::failed) CHECK(transition(s.next, Event{K::handed_off}, at(true)).effect == Effect::invalid);
    }
    // A handed-off recipient in flight is waited for, never started twice.
    CHECK(next_action(rcpt(S::handed_off), kNow) == Next::wait);
}

TEST_CASE("qmgr recipient: wall-clock times of the state file on the monotonic clock", "[qmgr]") {
    const int64_t wall = 1700000000, mono = 5000, max = 3600;
    CHECK(mono_from_wall(0, wall, mono, max) == 0);                      // no time stays none
    CHECK(mono_from_wall(wall + 60, wall, mono, max) == mono + 60);      // in a minute
    CHECK(mono_from_wall(wall - 60, wall, mono, max) == mono - 60);      // overdue: due at once
    CHECK(mono_from_wall(wall + 86400, wall, mono, max) == mono + max);  // the clock was a day ahead
    CHECK(wall_from_mono(mono + 60, wall, mono) == wall + 60);
    CHECK(wall_from_mono(0, wall, mono) == 0);
    // A saved time read back after the wall clock stepped back a day: never further than `max`.
    int64_t saved = wall_from_mono(mono + 600, wall, mono);
    CHECK(mono_from_wall(saved, wall - 86400, mono + 10, max) == mono + 10 + max);
    // Arrival: the age is never negative, even with an arrival in the future.
    CHECK(arrival_on_mono(wall - 100, wall, mono) == mono - 100);
    CHECK(arrival_on_mono(wall + 86400, wall, mono) == mono);
}

TEST_CASE("qmgr recipient: the system clock's monotonic seconds", "[qmgr]") {
    SystemClock sys;
    int64_t a = sys.mono();
    CHECK(sys.mono() >= a);
    CHECK(sys.wall() > 1600000000);
}
