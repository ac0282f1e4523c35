// The scheduler: which recipients are due, alias expansion, routing, LMTP hand-off, its results, and the reports to the sender.
#include "mta/qmgr/scheduler.hpp"

#include <algorithm>
#include <ctime>
#include <limits>
#include <set>

#include "common/auth/aliases.hpp"
#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "mta/qmgr/bounce.hpp"
#include "mta/qmgr/retry.hpp"

namespace ferry::qmgr {

namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

int64_t now_seconds() { return static_cast<int64_t>(time(nullptr)); }

bool is_due(const RcptState& r, int64_t now) {
    if (r.status == RcptStatus::pending) return true;
    return (r.status == RcptStatus::deferred || r.status == RcptStatus::unresolved) && r.next_try <= now;
}

bool too_many_recipients(const LmtpReply& r) { return r.code == 452 && r.text.rfind("452 4.5.3", 0) == 0; }

}  // namespace

Scheduler::Scheduler(event_base* base, const Config& config, Queue& queue, AccountStore& accounts)
    : base_(base),
      config_(config),
      queue_(queue),
      accounts_(accounts),
      retry_schedule_(config.durations("qmgr_retry_schedule")),
      max_deliveries_(static_cast<size_t>(std::max<int64_t>(1, config.integer("qmgr_max_deliveries")))),
      max_rcpts_per_transaction_(static_cast<size_t>(std::max<int64_t>(1, config.integer("qmgr_lmtp_max_recipients")))),
      lmtp_timeout_(static_cast<double>(config.duration("qmgr_lmtp_timeout").count())),
      helo_(my_hostname(config)),
      mda_socket_(config.str("mda_socket")),
      lifetime_(config.duration("maximal_queue_lifetime").count()),
      warn_after_(config.duration("delay_warning_time").count()) {
    auto on_run = [](evutil_socket_t, short, void* arg) noexcept { static_cast<Scheduler*>(arg)->run(); };
    auto on_scan = [](evutil_socket_t, short, void* arg) noexcept { static_cast<Scheduler*>(arg)->scan(); };
    run_ev_.reset(event_new(base, -1, 0, on_run, this));
    timer_ev_.reset(evtimer_new(base, on_run, this));
    scan_ev_.reset(event_new(base, -1, EV_PERSIST, on_scan, this));
}

Scheduler::~Scheduler() { active_.clear(); }

void Scheduler::start_timers() {
    timeval tv = to_timeval(static_cast<double>(std::max<int64_t>(1, config_.duration("qmgr_scan_interval").count())));
    event_add(scan_ev_.get(), &tv);
}

// Runs from a clean stack on the next loop iteration, however many events asked for it.
void Scheduler::kick() {
    if (run_pending_) return;
    run_pending_ = true;
    event_active(run_ev_.get(), 0, 0);
}

void Scheduler::scan() {
    auto ids = queue_.list();
    if (!ids) {
        log::errorx("queue scan: %s", ids.error().what().c_str());
        return;
    }
    std::set<std::string> present(ids->begin(), ids->end());
    for (const auto& id : present)
        if (!messages_.count(id)) add(id);
    for (auto it = messages_.begin(); it != messages_.end();) {
        if (!it->second.busy && !present.count(it->first)) {
            log::info("%s: queue file is gone; forgetting the message", it->first.c_str());
            it = messages_.erase(it);
        } else {
            ++it;
        }
    }
    kick();
}

void Scheduler::notify(const std::string& id) {
    if (!messages_.count(id) && !add(id) && !queue_.exists(id))
        log::warnx("%s: notified, but there is no such queue file", id.c_str());
    kick();
}

bool Scheduler::add(const std::string& id) {
    auto loaded = queue_.load(id);
    if (!loaded) {
        // An I/O error (out of descriptors, EIO): the files are left as they are for the next scan.
        log::warnx("%s: %s; trying again at the next queue scan", id.c_str(), loaded.error().what().c_str());
        return false;
    }
    if (!loaded->has_value()) return false;
    Message m{std::move((*loaded)->envelope), std::move((*loaded)->state)};
    // Lifetime and delay warnings count from arrival; a file without one counts from now.
    if (m.envelope.arrival <= 0) m.envelope.arrival = now_seconds();
    log::info("%s: from=<%s> nrcpt=%zu (queued)", id.c_str(), m.envelope.sender.c_str(), m.envelope.recipients.size());
    messages_.emplace(id, std::move(m));
    return true;
}

bool Scheduler::complete(const Message& m) const {
    for (size_t i = 0; i < m.envelope.recipients.size(); ++i)
        if (!m.state.has_index(i)) return false;
    return m.state.all_final();
}

bool Scheduler::due(const Message& m, int64_t now) const { return next_due(m) <= now; }

int64_t Scheduler::next_due(const Message& m) const {
    for (size_t i = 0; i < m.envelope.recipients.size(); ++i)
        if (!m.state.has_index(i)) return 0;  // not expanded yet
    int64_t when = kNever;
    for (const auto& r : m.state.rcpts) {
        if (r.status == RcptStatus::pending) return 0;
        // A failed recipient is due for its bounce; the others for their next attempt.
        if (r.status == RcptStatus::deferred || r.status == RcptStatus::unresolved || r.status == RcptStatus::failed)
            when = std::min(when, r.next_try);
    }
    return std::min(when, warning_due(m));
}

void Scheduler::run() {
    run_pending_ = false;
    int64_t now = now_seconds();
    int64_t earliest = kNever;
    for (auto it = messages_.begin(); it != messages_.end();) {
        std::string id = it->first;
        Message& m = it->second;
        ++it;  // attempt() and finish() may erase this message, never another
        if (m.busy) continue;
        if (complete(m)) {
            finish(id);
            continue;
        }
        int64_t when = next_due(m);
        if (when > now) {
            earliest = std::min(earliest, when);
        } else if (active_.size() < max_deliveries_) {
            attempt(id, m, now);
            // An attempt that ended at once (the delivery agent refused the connection, no local
            // recipient) starts no transaction whose end would run this again: arm the timer for it.
            if (auto again = messages_.find(id); again != messages_.end() && !again->second.busy)
                if (int64_t next = next_due(again->second); next > now) earliest = std::min(earliest, next);
        }
        // Due but no free slot: lmtp_closed() runs again when one frees up.
    }
    arm_timer(earliest, now);
}

void Scheduler::arm_timer(int64_t when, int64_t now) {
    event_del(timer_ev_.get());
    if (when == kNever) return;
    timeval tv = to_timeval(static_cast<double>(std::max<int64_t>(when - now, 0)) + 0.05);
    event_add(timer_ev_.get(), &tv);
}

// One delivery attempt of the message's due recipients: expand, route, hand the local ones to LMTP.
void Scheduler::attempt(const std::string& id, Message& m, int64_t now) {
    expand(id, m, now);
    std::vector<size_t> batch;
    for (size_t k = 0; k < m.state.rcpts.size(); ++k) {
        RcptState& r = m.state.rcpts[k];
        if (!is_due(r, now) || r.status == RcptStatus::unresolved) continue;
        std::string why;
        switch (route(r.to, why)) {
            case Route::local:
                if (batch.size() < max_rcpts_per_transaction_) batch.push_back(k);
                break;
            case Route::relay:
                // The place for ferry-relay (relay_socket): until it exists, external mail waits here.
                deferred(id, m, r, "none", "no relay transport configured", now);
                break;
            case Route::unknown:
                deferred(id, m, r, "none", why, now);
                break;
        }
    }
    if (batch.empty()) return finish(id);
    hand_off(id, m, std::move(batch), now);
}

// Queue-file recipients without records (and those whose expansion failed temporarily) are
// expanded through the aliases; the result is kept in the state file, so a retry delivers to the
// same targets and a target already delivered is never delivered again.
void Scheduler::expand(const std::string& id, Message& m, int64_t now) {
    auto& rcpts = m.state.rcpts;
    std::set<size_t> retry;
    for (const auto& r : rcpts)
        if (r.status == RcptStatus::unresolved && r.next_try <= now) retry.insert(r.index);
    std::vector<int> attempts_before(m.envelope.recipients.size(), 0);
    for (const auto& r : rcpts)
        if (retry.count(r.index)) attempts_before[r.index] = r.attempts;
    rcpts.erase(std::remove_if(rcpts.begin(), rcpts.end(), [&](const RcptState& r) { return retry.count(r.index) > 0; }),
                rcpts.end());

    aliases::Limits limits;
    limits.max_depth = static_cast<int>(config_.integer("alias_max_depth"));
    limits.max_targets = static_cast<size_t>(config_.integer("alias_max_targets"));
    for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
        if (m.state.has_index(i)) continue;
        const std::string& orig = m.envelope.recipients[i];
        auto targets = aliases::expand(orig, accounts_, limits);
        // An index without records counts as not expanded yet: an empty result must not leave it so.
        if (targets && targets->empty())
            targets = make_error(554, "5.4.6", "alias <" + orig + "> expands to no recipient");
        if (targets) {
            for (auto& t : *targets) rcpts.push_back(RcptState{i, RcptStatus::pending, 0, 0, orig, std::move(t), ""});
            continue;
        }
        const Error& e = targets.error();
        log::info("%s: alias expansion of <%s>: %s", id.c_str(), orig.c_str(), e.what().c_str());
        RcptState r{i, RcptStatus::unresolved, attempts_before[i], 0, orig, orig, ""};
        rcpts.push_back(r);
        if (e.code >= 500) bounced(id, m, rcpts.back(), "none", e.reply());
        else deferred(id, m, rcpts.back(), "none", e.code ? e.reply() : e.what(), now);
    }
}

Scheduler::Route Scheduler::route(const std::string& to, std::string& why) {
    auto hosted = accounts_.has_domain(domain_of(to));
    if (!hosted) {
        why = hosted.error().code ? hosted.error().reply() : hosted.error().what();
        return Route::unknown;
    }
    return *hosted ? Route::local : Route::relay;
}

void Scheduler::hand_off(const std::string& id, Message& m, std::vector<size_t> batch, int64_t now) {
    auto opened = queue_.open_message(id);
    if (opened && opened->status == spool::OpenedMessage::Status::missing) {
        log::warnx("%s: queue file is gone; forgetting the message", id.c_str());
        messages_.erase(id);
        return;
    }
    if (!opened || opened->status != spool::OpenedMessage::Status::ok) {
        std::string why = opened ? "corrupt queue file: " + opened->why : opened.error().what();
        for (size_t k : batch) deferred(id, m, m.state.rcpts[k], "lmtp", why, now);
        return finish(id);
    }
    LmtpJob job{id, m.envelope.sender, {}, std::move(opened->data)};
    for (size_t k : batch) job.recipients.push_back(m.state.rcpts[k].to);

    test_pause_point(config_, "qmgr-before-handoff", id);
    auto client = LmtpClient::start(base_, mda_socket_, helo_, lmtp_timeout_, std::move(job), this);
    if (!client) {
        // The delivery agent is down: every recipient waits for the next try, nothing is lost.
        for (size_t k : batch) deferred(id, m, m.state.rcpts[k], "lmtp", client.error().what(), now);
        return finish(id);
    }
    m.busy = true;
    LmtpClient* c = client->get();
    active_.emplace(c, Transaction{id, std::move(batch), std::move(client.value())});
}

void Scheduler::lmtp_result(LmtpClient& client, std::vector<LmtpReply> replies) {
    // Invariants, not peer input: a client reports once, for a message it was given, one reply per
    // recipient (LmtpClient fills a deferral for any the server left unanswered). Breaking one aborts.
    auto t = active_.find(&client);
    if (t == active_.end()) log::panic("LMTP result from an unknown transaction");
    const std::string& id = t->second.id;
    auto mit = messages_.find(id);
    if (mit == messages_.end()) log::panic("%s: LMTP result for a message not in memory", id.c_str());
    Message& m = mit->second;
    m.busy = false;
    test_pause_point(config_, "qmgr-after-handoff", id);
    int64_t now = now_seconds();
    // "452 4.5.3 too many recipients" (RFC 5321 4.5.3.1.10) asks for another transaction, not a
    // retry later; it is honoured only when the server took some recipient, so it cannot loop.
    bool progress = std::any_of(replies.begin(), replies.end(), [](const LmtpReply& r) { return r.code >= 200 && r.code != 452; });
    for (size_t k = 0; k < t->second.rcpts.size(); ++k) {
        RcptState& r = m.state.rcpts[t->second.rcpts[k]];
        if (k >= replies.size()) log::panic("%s: fewer LMTP replies than recipients", id.c_str());
        const LmtpReply& reply = replies[k];
        if (progress && too_many_recipients(reply)) continue;  // stays due: the next run sends it
        if (reply.ok()) delivered(id, r, reply.text);
        else if (reply.permanent()) bounced(id, m, r, "lmtp", reply.text);
        else deferred(id, m, r, "lmtp", reply.text, now);
    }
    finish(id);
}

void Scheduler::lmtp_closed(LmtpClient& client) {
    active_.erase(&client);  // destroys the client; its stream allows that from on_close
    kick();
}

void Scheduler::delivered(const std::string& id, RcptState& r, const std::string& reply) {
    r.status = RcptStatus::done;
    r.reply = reply;
    log::info("%s: to=<%s> orig_to=<%s> relay=lmtp status=sent (%s)", id.c_str(), r.to.c_str(), r.orig.c_str(),
              reply.c_str());
}

// A permanent failure: the recipient waits in `failed` until finish() has queued its bounce.
void Scheduler::bounced(const std::string& id, const Message&, RcptState& r, const std::string& relay,
                        const std::string& reply) {
    r.status = RcptStatus::failed;
    r.reply = reply;
    r.dsn_status = status_of_reply(reply, "5.0.0");
    r.next_try = 0;
    log::info("%s: to=<%s> orig_to=<%s> relay=%s status=bounced (%s)", id.c_str(), r.to.c_str(), r.orig.c_str(),
              relay.c_str(), reply.c_str());
}

// A temporary failure: retried on the schedule, or failed for good once the message is too old.
void Scheduler::deferred(const std::string& id, const Message& m, RcptState& r, const std::string& relay,
                         const std::string& reply, int64_t now) {
    if (is_expired(m, now)) return expired(id, r, relay, reply);
    if (r.status != RcptStatus::unresolved) r.status = RcptStatus::deferred;
    r.attempts = std::min(r.attempts + 1, kMaxAttempts);
    r.next_try = next_attempt_time(retry_schedule_, r.attempts, now);
    r.reply = reply;
    log::info("%s: to=<%s> orig_to=<%s> relay=%s status=deferred (%s)", id.c_str(), r.to.c_str(), r.orig.c_str(),
              relay.c_str(), reply.c_str());
}

// Postfix's rule: a message past maximal_queue_lifetime gets each recipient's next attempt, and a
// recipient that fails temporarily then fails for good with 4.4.7 (RFC 3463: delivery time expired).
bool Scheduler::is_expired(const Message& m, int64_t now) const { return now - m.envelope.arrival >= lifetime_; }

void Scheduler::expired(const std::string& id, RcptState& r, const std::string& relay, const std::string& reply) {
    r.status = RcptStatus::failed;
    r.reply = "message expired after " + duration_text(lifetime_) + " in the queue (last error: " + reply + ")";
    r.dsn_status = "4.4.7";
    r.next_try = 0;
    log::info("%s: to=<%s> orig_to=<%s> relay=%s status=expired (%s)", id.c_str(), r.to.c_str(), r.orig.c_str(),
              relay.c_str(), r.reply.c_str());
}

// One bounce for every recipient that failed and whose sender was not told yet. The state says
// `bounced` only after the report is committed: a crash in between gives a second report, never none.
void Scheduler::report_failures(const std::string& id, Message& m, int64_t now) {
    std::vector<size_t> which;
    for (size_t k = 0; k < m.state.rcpts.size(); ++k)
        if (m.state.rcpts[k].status == RcptStatus::failed && m.state.rcpts[k].next_try <= now) which.push_back(k);
    if (which.empty()) return;
    if (!dsn::should_report(m.envelope.sender)) {
        log::info("%s: no bounce for null sender", id.c_str());
    } else {
        auto report = queue_notice(id, m, which, dsn::Action::failed, now);
        if (!report) {
            log::errorx("%s: cannot queue the bounce, trying again later: %s", id.c_str(), report.error().what().c_str());
            int64_t later = next_attempt_time(retry_schedule_, 1, now);
            for (size_t k : which) m.state.rcpts[k].next_try = later;
            return;
        }
        log::info("%s: sender non-delivery notification: %s", id.c_str(), report->c_str());
        test_pause_point(config_, "qmgr-after-bounce", id);
        add(*report);
        kick();
    }
    for (size_t k : which) m.state.rcpts[k].status = RcptStatus::bounced;
}

// When the next delay warning is due, kNever for none: once per message, after delay_warning_time,
// while some recipient still waits for a retry, and only when it comes before the message expires.
int64_t Scheduler::warning_due(const Message& m) const {
    if (warn_after_ <= 0 || warn_after_ >= lifetime_ || m.state.warned) return kNever;
    bool waiting = std::any_of(m.state.rcpts.begin(), m.state.rcpts.end(), [](const RcptState& r) {
        return r.status == RcptStatus::deferred || r.status == RcptStatus::unresolved;
    });
    return waiting ? std::max(m.envelope.arrival + warn_after_, m.warn_retry) : kNever;
}

void Scheduler::warn_if_due(const std::string& id, Message& m, int64_t now) {
    if (warning_due(m) > now) return;
    std::vector<size_t> which;
    for (size_t k = 0; k < m.state.rcpts.size(); ++k)
        if (m.state.rcpts[k].status == RcptStatus::deferred || m.state.rcpts[k].status == RcptStatus::unresolved)
            which.push_back(k);
    if (!dsn::should_report(m.envelope.sender)) {
        log::info("%s: no delay warning for null sender", id.c_str());
        m.state.warned = now;
        return;
    }
    auto report = queue_notice(id, m, which, dsn::Action::delayed, now);
    if (!report) {
        log::errorx("%s: cannot queue the delay warning, trying again later: %s", id.c_str(),
                    report.error().what().c_str());
        m.warn_retry = next_attempt_time(retry_schedule_, 1, now);
        return;
    }
    log::info("%s: sender delay notification: %s", id.c_str(), report->c_str());
    test_pause_point(config_, "qmgr-after-warning", id);
    m.state.warned = now;
    add(*report);
    kick();
}

Result<std::string> Scheduler::queue_notice(const std::string& id, const Message& m, const std::vector<size_t>& which,
                                            dsn::Action action, int64_t now) {
    // Only the header section is quoted, so only it is read: the body stays on disk.
    auto original = queue_.open_message(id);
    if (!original) return original.error();
    if (original->status == spool::OpenedMessage::Status::missing)
        return make_error(0, "", "queue file " + id + " is gone");
    if (original->status != spool::OpenedMessage::Status::ok)
        return make_error(0, "", "corrupt queue file " + id + ": " + original->why);
    auto header = read_header(original->data);
    if (!header) return header.error();
    std::vector<const RcptState*> rcpts;
    for (size_t k : which) rcpts.push_back(&m.state.rcpts[k]);
    auto report = make_report(m.envelope, *header, rcpts, action, helo_, m.envelope.arrival + lifetime_, now);
    return queue_report(queue_.dir(), std::move(report));
}

// Reports failures and delays to the sender, then saves the recipients' state, or removes the
// message once every recipient is final.
void Scheduler::finish(const std::string& id) {
    auto it = messages_.find(id);
    if (it == messages_.end()) return;
    int64_t now = now_seconds();
    report_failures(id, it->second, now);
    warn_if_due(id, it->second, now);
    if (!complete(it->second)) {
        if (auto r = queue_.save_state(it->second.state); !r)
            log::errorx("%s: cannot save recipient state: %s", id.c_str(), r.error().what().c_str());
        return;
    }
    if (auto r = queue_.remove(id); !r) {
        log::errorx("%s: %s", id.c_str(), r.error().what().c_str());
        return;
    }
    log::info("%s: removed", id.c_str());
    messages_.erase(it);
}

}  // namespace ferry::qmgr
