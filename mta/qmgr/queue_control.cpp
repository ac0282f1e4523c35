// The queue tools' control lines applied by the scheduler: flush, hold, release, delete, requeue (ferry-qmgr(8)).
#include <algorithm>
#include <cctype>
#include <map>

#include "common/base/log.hpp"
#include "common/mail/address.hpp"
#include "mta/qmgr/scheduler.hpp"

namespace ferry::qmgr {

namespace {

using Reply = proto::qmgr::Reply;
using Command = proto::qmgr::Message;

bool waiting(RcptStatus s) {
    return s == RcptStatus::deferred || s == RcptStatus::unknown || s == RcptStatus::unresolved;
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

Reply no_such(const std::string& id) { return {Reply::unknown, "no message " + id + " in the queue"}; }

}  // namespace

Reply Scheduler::control(const Command& c) {
    switch (c.type) {
        case Command::flush: return flush(c.id);
        case Command::hold: return hold(c.id, true);
        case Command::release: return hold(c.id, false);
        case Command::remove: return remove(c.id);
        case Command::requeue: return requeue(c.id);
        default: return {Reply::error, "not a control command"};
    }
}

// A file whose notice was lost, or one that arrived since the last scan, is loaded now.
Scheduler::Message* Scheduler::find_or_load(const std::string& id) {
    auto it = messages_.find(id);
    if (it == messages_.end() && valid_queue_id(id) && add(id, true)) it = messages_.find(id);
    return it == messages_.end() ? nullptr : &it->second;
}

// Deferred recipients (those of `domain` only, when given) are due now; held messages stay held.
Reply Scheduler::flush(const std::string& domain) {
    scan();
    int64_t now = clock_.mono();
    std::string want = lower(domain);
    size_t rcpts = 0, messages = 0;
    for (auto& [id, m] : messages_) {
        if (m.busy || m.state.held) continue;
        size_t before = rcpts;
        for (auto& r : m.state.rcpts) {
            if (!waiting(r.status) || r.next_try <= now) continue;
            if (!want.empty() && lower(domain_of(r.to)) != want && lower(domain_of(r.orig)) != want) continue;
            r.next_try = now;
            ++rcpts;
        }
        if (rcpts == before) continue;
        ++messages;
        log::info("%s: flush: %zu recipients due now", id.c_str(), rcpts - before);
    }
    log::info("queue flush%s%s: %zu recipients of %zu messages due now", want.empty() ? "" : " of ", want.c_str(), rcpts,
              messages);
    wake_all();
    return {Reply::ok, std::to_string(rcpts) + " recipients of " + std::to_string(messages) + " messages due now"};
}

// The hold is saved in the state file (held <time>), so it survives a restart; a delivery already in
// flight finishes.
Reply Scheduler::hold(const std::string& id, bool on) {
    Message* m = find_or_load(id);
    if (!m) return no_such(id);
    const char* verb = on ? "held" : "released";
    if ((m->state.held != 0) == on) return {Reply::ok, id + " was " + (on ? "held" : "not held") + " already"};
    int64_t before = m->state.held;
    m->state.held = on ? clock_.wall() : 0;
    if (!save(id, *m)) {
        m->state.held = before;
        return {Reply::error, "cannot save the state of " + id + " (see the qmgr log)"};
    }
    log::info("%s: %s by the administrator%s", id.c_str(), verb, on && m->busy ? " (the delivery in flight finishes)" : "");
    if (!on) {
        runnable_.insert(id);
        kick();
    }
    return {Reply::ok, id + " " + verb + (on && m->busy ? "; the delivery in flight finishes" : "")};
}

// No bounce: the administrator chose to drop the message. One in flight is refused, not waited for:
// its transaction's replies must find the message to record them.
Reply Scheduler::remove(const std::string& id) {
    Message* m = find_or_load(id);
    if (!m) return no_such(id);
    if (m->busy) return {Reply::busy, id + " is in flight (being delivered), try again"};
    Queue::end_saves(*m->slot);
    if (auto r = queue_.remove(id); !r) {
        log::errorx("%s: delete: %s", id.c_str(), r.error().what().c_str());
        return {Reply::error, "cannot delete " + id + ": " + r.error().what()};
    }
    log::info("%s: deleted by the administrator (from=<%s>, %zu recipients not delivered)", id.c_str(),
              m->envelope.sender.c_str(),
              static_cast<size_t>(std::count_if(m->state.rcpts.begin(), m->state.rcpts.end(),
                                                [](const RcptState& r) { return !is_final(r.status); })));
    messages_.erase(id);
    return {Reply::ok, id + " deleted"};
}

// Every waiting recipient is due now. A queue-file recipient whose records all wait as deferred is
// expanded through the aliases again (unresolved, its original address), so alias and routing
// changes apply; one that may have been delivered (unknown) or was delivered in part keeps its targets.
Reply Scheduler::requeue(const std::string& id) {
    Message* m = find_or_load(id);
    if (!m) return no_such(id);
    if (m->busy) return {Reply::busy, id + " is in flight (being delivered), try again"};
    int64_t now = clock_.mono();
    std::map<size_t, bool> all_deferred;
    for (const auto& r : m->state.rcpts) {
        bool d = r.status == RcptStatus::deferred || r.status == RcptStatus::unresolved;
        auto [it, fresh] = all_deferred.emplace(r.index, d);
        if (!fresh) it->second = it->second && d;
    }
    std::vector<RcptState> before = m->state.rcpts;
    size_t due = 0;
    for (auto& r : m->state.rcpts) {
        if (!waiting(r.status)) continue;
        if (all_deferred[r.index]) {
            r.status = RcptStatus::unresolved;
            r.to = r.orig;
        }
        r.next_try = now;
        ++due;
    }
    if (!save(id, *m)) {
        m->state.rcpts = std::move(before);
        return {Reply::error, "cannot save the state of " + id + " (see the qmgr log)"};
    }
    log::info("%s: requeued by the administrator: %zu recipients due now%s", id.c_str(), due,
              m->state.held ? " (still held)" : "");
    runnable_.insert(id);
    kick();
    return {Reply::ok, id + " requeued: " + std::to_string(due) + " recipients due now" +
                           (m->state.held ? " (still held)" : "")};
}

}  // namespace ferry::qmgr
