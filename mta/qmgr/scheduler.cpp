// The scheduler: which recipients are due, alias expansion, routing, LMTP hand-off, its results, and the reports to the sender.
#include "mta/qmgr/scheduler.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <limits>
#include <set>
#include <utility>

#include "common/auth/aliases.hpp"
#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/mail/address.hpp"
#include "mta/qmgr/bounce.hpp"
#include "mta/qmgr/retry.hpp"

namespace ferry::qmgr {

namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr int64_t kSaveRetry = 5;  // seconds between tries to save a state that could not be saved
constexpr size_t kRunBatch = 256;  // messages one run() looks at before it lets the loop go on

// The domain a remote recipient is grouped by: one ferry-relay transaction per message and domain.
std::string destination_of(const std::string& address) {
    std::string d = domain_of(address);
    for (char& c : d) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return d;
}

bool too_many_recipients(const LmtpReply& r) { return r.code == 452 && r.text.rfind("452 4.5.3", 0) == 0; }

// Only ENOENT says a queue file is not there; any other error is no answer.
Result<bool> queue_file_exists(const Queue& queue, const std::string& id) {
    struct stat st;
    if (stat(queue.queue_path(id).c_str(), &st) == 0) return true;
    if (errno == ENOENT) return false;
    return sys_error("cannot look for " + queue.queue_path(id));
}

}  // namespace

const Clock& Scheduler::system_clock() {
    static const SystemClock clock;
    return clock;
}

Scheduler::Scheduler(event_base* base, const Config& config, Queue& queue, AccountStore& accounts, const Clock& clock)
    : base_(base),
      config_(config),
      queue_(queue),
      accounts_(accounts),
      clock_(clock),
      retry_schedule_(config.durations("qmgr_retry_schedule")),
      max_retry_delay_(kDefaultRetryDelay.count()),
      max_deliveries_(static_cast<size_t>(std::max<int64_t>(1, config.integer("qmgr_max_deliveries")))),
      gather_(config.integer("qmgr_gather_delay_ms")),  // its range is checked at start-up (main.cpp)
      max_rcpts_per_transaction_(static_cast<size_t>(std::max<int64_t>(1, config.integer("qmgr_lmtp_max_recipients")))),
      lmtp_timeout_(static_cast<double>(config.duration("qmgr_lmtp_timeout").count())),
      relay_timeout_(static_cast<double>(config.duration("qmgr_relay_timeout").count())),
      helo_(my_hostname(config)),
      mda_socket_(config.str("mda_socket")),
      lifetime_(config.duration("maximal_queue_lifetime").count()),
      warn_after_(config.duration("delay_warning_time").count()),
      dests_(static_cast<size_t>(std::max<int64_t>(1, config.integer("qmgr_destination_concurrency"))),
             config.duration("qmgr_destination_rate_delay").count(), &retry_schedule_) {
    if (!retry_schedule_.empty()) {
        max_retry_delay_ = kMinRetryDelay.count();
        for (auto d : retry_schedule_) max_retry_delay_ = std::max<int64_t>(max_retry_delay_, d.count());
    }
    auto on_run = [](evutil_socket_t, short, void* arg) noexcept { static_cast<Scheduler*>(arg)->run(); };
    auto on_scan = [](evutil_socket_t, short, void* arg) noexcept { static_cast<Scheduler*>(arg)->scan(); };
    run_ev_.reset(event_new(base, -1, 0, on_run, this));
    timer_ev_.reset(evtimer_new(base, on_run, this));
    more_ev_.reset(evtimer_new(base, on_run, this));
    gather_ev_.reset(evtimer_new(base, on_run, this));
    scan_ev_.reset(event_new(base, -1, EV_PERSIST, on_scan, this));
}

Scheduler::~Scheduler() {
    stage_.reset();  // its threads end before what their completions would touch
    active_.clear();
    idle_lmtp_.clear();
}

void Scheduler::use_commit_stage(int threads) { stage_ = std::make_unique<CommitStage>(base_, threads); }

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
    for (const auto& id : present) {
        if (messages_.count(id) || verifying_.count(id) || checking_.count(id)) continue;
        if (pool_) verifying_.insert(id);
        else add(id, true);
    }
    if (checking_.empty()) verify_next();
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

// Reading a whole file is disk work, and a backlog found at start-up may be large: off the loop.
void Scheduler::verify_next() {
    if (verifying_.empty()) return;
    auto chunk = std::make_shared<std::vector<std::string>>();
    while (!verifying_.empty() && chunk->size() < kVerifyChunk) {
        chunk->push_back(*verifying_.begin());
        checking_.insert(*verifying_.begin());
        verifying_.erase(verifying_.begin());
    }
    auto outcomes = std::make_shared<std::vector<Result<bool>>>();
    pool_->submit(
        [this, chunk, outcomes] {
            for (const auto& id : *chunk) outcomes->push_back(queue_.verify(id));
        },
        [this, chunk, outcomes] {
            checking_.clear();
            for (size_t i = 0; i < chunk->size(); ++i) {
                const std::string& id = (*chunk)[i];
                auto& ok = (*outcomes)[i];
                if (!ok) log::warnx("%s: %s; trying again at the next queue scan", id.c_str(), ok.error().what().c_str());
                // Announced meanwhile, or moved to corrupt/: nothing to add.
                else if (*ok && !messages_.count(id)) add(id, false);
            }
            verify_next();
            kick();
        });
}

void Scheduler::notify(const std::string& id) {
    if (!messages_.count(id) && !add(id, false) && !queue_.exists(id))
        log::warnx("%s: notified, but there is no such queue file", id.c_str());
    if (messages_.count(id)) fresh_.insert(id);  // before a backlog the scan found
    // With nothing in flight, ferry-mda is idle: a short wait lets the messages that arrive
    // meanwhile reach it together, on one wake-up, instead of one wake-up and commit each.
    if (gather_.count() > 0 && in_flight() == 0) {
        if (!evtimer_pending(gather_ev_.get(), nullptr)) {
            timeval tv = to_timeval(std::chrono::duration<double>(gather_).count());
            event_add(gather_ev_.get(), &tv);
        }
        return;
    }
    kick();
}

// The state file's wall-clock times are taken onto the monotonic clock here, sanely: a retry no
// further ahead than the longest retry delay, an age never below 0 (ferry-spool(5)).
bool Scheduler::add(const std::string& id, bool verify) {
    auto loaded = queue_.load(id, verify);
    if (!loaded) {
        // An I/O error (out of descriptors, EIO): the files are left as they are for the next scan.
        log::warnx("%s: %s; trying again at the next queue scan", id.c_str(), loaded.error().what().c_str());
        return false;
    }
    if (!loaded->has_value()) return false;
    Message m{std::move((*loaded)->envelope), std::move((*loaded)->state)};
    m.on_disk = (*loaded)->state_file;
    // How a recipient saved as final got there is not kept: its removal is synced.
    for (const auto& r : m.state.rcpts) m.sync_removal |= is_final(r.status) || r.status == RcptStatus::failed;
    int64_t mono = clock_.mono(), wall = clock_.wall();
    // Lifetime and delay warnings count from arrival; a file without one counts from now.
    if (m.envelope.arrival <= 0) m.envelope.arrival = wall;
    m.arrived = arrival_on_mono(m.envelope.arrival, wall, mono);
    log::info("%s: from=<%s> nrcpt=%zu (queued)", id.c_str(), m.envelope.sender.c_str(), m.envelope.recipients.size());
    bool changed = false;
    for (size_t k = 0; k < m.state.rcpts.size(); ++k) {
        RcptState& r = m.state.rcpts[k];
        r.next_try = mono_from_wall(r.next_try, wall, mono, max_retry_delay_);
        changed |= r.status == RcptStatus::handed_off;
        apply(id, m, k, Event{EventKind::restart}, "none", mono);
    }
    auto& stored = messages_.emplace(id, std::move(m)).first->second;
    if (changed) save_then(id, stored, {});
    runnable_.insert(id);
    return true;
}

bool Scheduler::complete(const Message& m) const {
    for (size_t i = 0; i < m.envelope.recipients.size(); ++i)
        if (!m.state.has_index(i)) return false;
    return m.state.all_final();
}

Times Scheduler::times(const Message& m, int64_t now) const {
    return Times{now, now - m.arrived, lifetime_, &retry_schedule_};
}

int64_t Scheduler::next_due(const Message& m, const std::set<std::string>& skip) const {
    for (size_t i = 0; i < m.envelope.recipients.size(); ++i)
        if (!m.state.has_index(i)) return 0;  // not expanded yet
    int64_t when = kNever;
    for (const auto& r : m.state.rcpts) {
        bool waits = r.status == RcptStatus::queued || r.status == RcptStatus::deferred || r.status == RcptStatus::unknown;
        if (waits && !skip.empty() && skip.count(destination_of(r.to))) continue;  // woken by its destination
        if (r.status == RcptStatus::queued) return 0;
        // A failed recipient is due for its bounce; the others for their next attempt.
        if (r.status == RcptStatus::deferred || r.status == RcptStatus::unknown ||
            r.status == RcptStatus::unresolved || r.status == RcptStatus::failed)
            when = std::min(when, r.next_try);
    }
    return std::min(when, warning_due(m));
}

// One message of run(): false when no slot is free for it (it stays due).
bool Scheduler::visit(const std::string& id, int64_t now) {
    auto mit = messages_.find(id);
    if (mit == messages_.end()) return true;
    Message& m = mit->second;
    if (m.state.held) return true;  // a held message waits for ferry-admin queue release
    // Its recipients in flight are handed_off, so only the others are looked at; it is removed
    // once the last transaction has ended (lmtp_closed wakes it).
    if (complete(m)) {
        if (!m.busy) settle(id);  // removal needs no saved state
        return true;
    }
    if (m.unsaved) {
        // Nothing is done for a message whose state is not on disk, until it is.
        if (m.save_retry > now || !save(id, m)) {
            timed_.emplace(m.save_retry, id);
            return true;
        }
    }
    int64_t when = next_due(m, {});
    if (when > now) {
        if (when != kNever) timed_.emplace(when, id);
        return true;
    }
    if (in_flight() >= max_deliveries_) return false;  // lmtp_closed() runs this again when one frees up
    std::set<std::string> blocked;
    attempt(id, m, now, blocked);
    place(id, now, blocked);
    return true;
}

void Scheduler::run() {
    run_pending_ = false;
    int64_t now = clock_.mono();
    while (!timed_.empty() && timed_.begin()->first <= now) {
        runnable_.insert(timed_.begin()->second);
        timed_.erase(timed_.begin());
    }
    while (!dest_timed_.empty() && dest_timed_.begin()->first <= now) {
        std::string dest = dest_timed_.begin()->second;
        dest_timed_.erase(dest_timed_.begin());
        release(dest, now);
    }
    // A bounded batch per loop iteration, so that a backlog met at once (a start with a full queue)
    // never stalls the loop; messages just notified and those whose transaction ended go first.
    size_t budget = kRunBatch;
    std::set<std::string> seen;
    std::vector<std::string> again;  // put back while this run went on: each message once per run
    bool stopped = false;
    for (auto* from : {&fresh_, &runnable_}) {
        while (!stopped && budget > 0 && !from->empty()) {
            std::string id = *from->begin();
            from->erase(from->begin());
            if (!seen.insert(id).second) {
                again.push_back(std::move(id));
                continue;
            }
            --budget;
            stopped = !visit(id, now);
            if (stopped) runnable_.insert(id);
        }
    }
    runnable_.insert(again.begin(), again.end());
    if (!stopped && budget == 0 && (!fresh_.empty() || !runnable_.empty())) {
        // A zero timer, not kick(): the loop polls its sockets (a NEW line, an LMTP reply) first.
        timeval zero{0, 0};
        event_add(more_ev_.get(), &zero);
    }
    int64_t earliest = kNever;
    if (!timed_.empty()) earliest = timed_.begin()->first;
    if (!dest_timed_.empty()) earliest = std::min(earliest, dest_timed_.begin()->first);
    // Work left with nothing in flight to end (cannot happen by design): looked at again in a second.
    if ((!runnable_.empty() || !fresh_.empty()) && in_flight() == 0) earliest = std::min(earliest, now + 1);
    arm_timer(earliest, now);
}

// After an attempt: the message waits for each destination that held its due recipients back, for
// its next time, or (due work, no free slot) in runnable_.
void Scheduler::place(const std::string& id, int64_t now, const std::set<std::string>& blocked) {
    auto mit = messages_.find(id);
    if (mit == messages_.end()) return;
    Message& m = mit->second;
    if (m.state.held) return;
    if (m.unsaved) {
        timed_.emplace(m.save_retry, id);
        return;
    }
    for (const auto& dest : blocked) {
        parked_[dest].insert(id);
        int64_t until = kNever;
        Destinations::Gate g = dests_.gate(dest, now, until);
        if (g == Destinations::Gate::dead || g == Destinations::Gate::rate) dest_timed_.emplace(until, dest);
        else if (g == Destinations::Gate::open) release(dest, now);  // opened meanwhile (an attempt ended at once)
    }
    int64_t next = next_due(m, blocked);
    if (next > now) {
        if (next != kNever) timed_.emplace(next, id);
    } else {
        runnable_.insert(id);
    }
}

// The destination may take more transactions: as many of its waiting messages as it has free
// slots are looked at again, oldest first; the others stay parked.
void Scheduler::release(const std::string& dest, int64_t now) {
    auto p = parked_.find(dest);
    if (p == parked_.end()) return;
    int64_t until = kNever;
    Destinations::Gate g = dests_.gate(dest, now, until);
    if (g == Destinations::Gate::dead || g == Destinations::Gate::rate) {
        dest_timed_.emplace(until, dest);
        return;
    }
    if (g == Destinations::Gate::busy) return;  // the end of one of its transactions comes back here
    size_t free = dests_.free_slots(dest);
    auto& ids = p->second;
    for (auto it = ids.begin(); it != ids.end() && free > 0;) {
        if (messages_.count(*it)) {
            runnable_.insert(*it);
            --free;
        }
        it = ids.erase(it);
    }
    if (ids.empty()) parked_.erase(p);
    kick();
}

// Every message is looked at again (queue tools: a flush may make any of them due).
void Scheduler::wake_all() {
    for (const auto& [id, m] : messages_) runnable_.insert(id);
    parked_.clear();
    kick();
}

void Scheduler::arm_timer(int64_t when, int64_t now) {
    event_del(timer_ev_.get());
    if (when == kNever) return;
    timeval tv = to_timeval(static_cast<double>(std::max<int64_t>(when - now, 0)) + 0.05);
    event_add(timer_ev_.get(), &tv);
}

void Scheduler::apply(const std::string& id, Message& m, size_t k, const Event& e, const std::string& relay,
                      int64_t now) {
    RcptState& r = m.state.rcpts[k];
    Step step = transition(r, e, times(m, now));
    if (step.effect == Effect::invalid)
        log::panic("%s: to=<%s>: event %d in state %s", id.c_str(), r.to.c_str(), static_cast<int>(e.kind),
                   status_name(r.status));
    r = std::move(step.next);
    const char* status = nullptr;
    switch (step.effect) {
        case Effect::none:
        case Effect::invalid: return;
        case Effect::delivered:
            status = "sent";
            m.sync_removal |= relay != "local";  // a peer's copy has no delivery record to meet a repeat
            if (dsn::wants_success(notify_bits(m.envelope, r.index))) m.success_due.push_back(k);
            break;
        case Effect::deferred: status = "deferred"; break;
        case Effect::unknown: status = "unknown"; break;
        case Effect::unknown_past_lifetime: status = "unknown, past maximal_queue_lifetime: retried, never bounced"; break;
        case Effect::failed: status = "bounced"; m.sync_removal = true; break;
        case Effect::expired: status = "expired"; m.sync_removal = true; break;
        case Effect::bounced: return;  // logged with the report
    }
    log::info("%s: to=<%s> orig_to=<%s> relay=%s status=%s (%s)", id.c_str(), r.to.c_str(), r.orig.c_str(),
              relay.c_str(), status, r.reply.c_str());
}

MessageState Scheduler::state_on_disk(const Message& m) const {
    MessageState on_disk = m.state;
    int64_t mono = clock_.mono(), wall = clock_.wall();
    for (auto& r : on_disk.rcpts) r.next_try = wall_from_mono(r.next_try, wall, mono);
    return on_disk;
}

bool Scheduler::save(const std::string& id, Message& m) {
    uint64_t gen = ++m.save_gen;
    auto r = queue_.save_state(state_on_disk(m), *m.slot, gen);
    saved(id, gen, r);
    return static_cast<bool>(r);
}

void Scheduler::save_then(const std::string& id, Message& m, std::function<void(bool)> then) {
    if (!stage_) {
        bool ok = save(id, m);
        if (then) then(ok);
        return;
    }
    uint64_t gen = ++m.save_gen;
    CommitStage::Item item = queue_.state_item(state_on_disk(m), m.slot, gen);
    item.sync = [this, id, sync = std::move(item.sync)]() -> Result<void> {
        auto r = sync();
        if (r) test_pause_point(config_, "qmgr-state-synced", id);
        return r;
    };
    item.done = [this, id, gen, then = std::move(then)](Result<void> r) {
        saved(id, gen, r);
        if (then) then(static_cast<bool>(r));
    };
    stage_->submit(std::move(item));
}

// A failed save leaves the message unsaved until a later one succeeds; an older one succeeding
// meanwhile does not count.
void Scheduler::saved(const std::string& id, uint64_t gen, const Result<void>& r) {
    auto mit = messages_.find(id);
    if (mit == messages_.end()) return;
    Message& m = mit->second;
    if (!r) {
        if (!m.unsaved)
            log::errorx("%s: cannot save recipient state, no work on the message until it is saved: %s", id.c_str(),
                        r.error().what().c_str());
        m.unsaved = true;
        m.failed_gen = std::max(m.failed_gen, gen);
        m.save_retry = clock_.mono() + kSaveRetry;
        if (stage_) {
            timed_.emplace(m.save_retry, id);
            kick();
        }
        return;
    }
    m.on_disk = true;
    if (gen < m.failed_gen) return;
    if (m.unsaved) log::info("%s: recipient state saved", id.c_str());
    m.unsaved = false;
}

// One delivery attempt of the message's due recipients: expand, route, hand the local ones to
// ferry-mda and those of each remote domain to ferry-relay, all at once, as far as the overall
// and per-destination limits allow; what is left stays due for the next run.
void Scheduler::attempt(const std::string& id, Message& m, int64_t now, std::set<std::string>& blocked) {
    // An attempt that only finds its destinations busy changes nothing and saves nothing.
    bool changed = false;
    for (size_t i = 0; i < m.envelope.recipients.size(); ++i) changed |= !m.state.has_index(i);
    for (const auto& r : m.state.rcpts) changed |= next_action(r, now) == Next::expand;
    expand(id, m, now);
    std::vector<size_t> local;
    std::map<std::string, std::vector<size_t>> remote;  // by destination domain
    for (size_t k = 0; k < m.state.rcpts.size(); ++k) {
        if (next_action(m.state.rcpts[k], now) != Next::hand_off) continue;
        std::string why;
        switch (route(m.state.rcpts[k].to, why)) {
            case Route::local:
                if (local.size() < max_rcpts_per_transaction_) local.push_back(k);
                break;
            case Route::relay: remote[destination_of(m.state.rcpts[k].to)].push_back(k); break;
            case Route::unknown:
                apply(id, m, k, Event{EventKind::not_attempted, 0, false, why}, "none", now);
                changed = true;
                break;
        }
    }
    for (const auto& r : m.state.rcpts) {
        Next n = next_action(r, now);
        changed |= n == Next::plan_bounce || n == Next::commit_bounce;
    }
    changed |= warning_due(m) <= now;
    if (!local.empty()) {
        if (!hand_off(id, m, std::move(local), mda_socket_, "", now)) return;
    }
    if (!remote.empty()) {
        std::string relay_socket = config_.str("relay_socket");
        struct stat st;
        if (stat(relay_socket.c_str(), &st) != 0) {
            // No ferry-relay ever listened here: the remote recipients wait, as they did before there was one.
            for (auto& [domain, batch] : remote)
                for (size_t k : batch)
                    apply(id, m, k, Event{EventKind::not_attempted, 0, false, "no relay transport configured"}, "none", now);
            remote.clear();
            changed = true;
        }
        for (auto& [domain, batch] : remote) {
            int64_t until = kNever;
            Destinations::Gate g = dests_.gate(domain, now, until);
            if (g == Destinations::Gate::dead) {
                // No save for the wait alone: a backlog for a dead destination costs no disk work.
                changed |= hold_back(id, m, domain, batch, until, now);
                blocked.insert(domain);
                continue;
            }
            if (m.unsaved) break;  // a hand-off needs its state saved first: no use trying again now
            if (g != Destinations::Gate::open) {
                blocked.insert(domain);  // busy or rate: the destination wakes it (release)
                continue;
            }
            if (in_flight() >= max_deliveries_) continue;
            if (batch.size() > max_rcpts_per_transaction_) batch.resize(max_rcpts_per_transaction_);
            if (!hand_off(id, m, std::move(batch), relay_socket, domain, now)) return;
        }
    }
    if (changed) settle(id);
}

bool Scheduler::hold_back(const std::string& id, Message& m, const std::string& dest, const std::vector<size_t>& rcpts,
                          int64_t until, int64_t now) {
    if (dests_.first_hold_notice(dest))
        log::info("destination %s is held back for %llds after failures; its recipients wait", dest.c_str(),
                  static_cast<long long>(until - now));
    std::string why = "destination " + dest + " is held back after failures to reach it";
    bool settled = false;
    for (size_t k : rcpts) {
        RcptState& r = m.state.rcpts[k];
        // A queued recipient stays queued (no state file for the wait alone), the reason kept for a
        // delay warning; past maximal_queue_lifetime it expires as a deferred one would.
        if (r.status == RcptStatus::queued) {
            Step step = transition(r, Event{EventKind::not_attempted, 0, false, why}, times(m, now));
            if (step.effect != Effect::deferred) {
                apply(id, m, k, Event{EventKind::not_attempted, 0, false, why}, "none", now);
                settled = true;
            } else {
                r.reply = why;
            }
            continue;
        }
        if (r.status == RcptStatus::deferred || r.status == RcptStatus::unknown) r.next_try = std::max(r.next_try, until);
    }
    return settled;
}

// Queue-file recipients without records (and those whose expansion failed temporarily) are
// expanded through the aliases; the result is kept in the state file, so a retry delivers to the
// same targets and a target already delivered is never delivered again.
void Scheduler::expand(const std::string& id, Message& m, int64_t now) {
    auto& rcpts = m.state.rcpts;
    std::set<size_t> retry;
    for (const auto& r : rcpts)
        if (next_action(r, now) == Next::expand) retry.insert(r.index);
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
            for (auto& t : *targets) rcpts.push_back(RcptState{i, RcptStatus::queued, 0, 0, orig, std::move(t), ""});
            continue;
        }
        const Error& e = targets.error();
        log::info("%s: alias expansion of <%s>: %s", id.c_str(), orig.c_str(), e.what().c_str());
        rcpts.push_back(RcptState{i, RcptStatus::unresolved, attempts_before[i], 0, orig, orig, ""});
        int code = e.code >= 500 ? e.code : 451;
        apply(id, m, rcpts.size() - 1, Event{EventKind::expand_failed, code, false, e.code ? e.reply() : e.what()},
              "none", now);
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

// The recipients are saved as handed_off before their RCPT goes out: a crash from there on leaves
// them unknown (maybe delivered), never queued or deferred, so none of them can expire into a bounce.
// `socket` is ferry-mda's (local recipients, `dest` empty) or ferry-relay's (remote domain `dest`).
bool Scheduler::hand_off(const std::string& id, Message& m, std::vector<size_t> batch, const std::string& socket,
                         const std::string& dest, int64_t now) {
    const std::string relay = dest.empty() ? "local" : "ferry-relay";
    auto opened = queue_.open_message(id);
    if (opened && opened->status == spool::OpenedMessage::Status::missing) {
        // Forgotten only with no transaction in flight: their ends look the message up.
        log::warnx("%s: queue file is gone; forgetting the message", id.c_str());
        if (m.busy == 0) messages_.erase(id);
        return false;
    }
    if (!opened || opened->status != spool::OpenedMessage::Status::ok) {
        std::string why = opened ? "corrupt queue file: " + opened->why : opened.error().what();
        for (size_t k : batch) apply(id, m, k, Event{EventKind::not_attempted, 0, false, why}, relay, now);
        settle(id);
        return messages_.count(id) > 0;
    }
    LmtpJob job{id, m.envelope.sender, {}, std::move(opened->data), mail_params(m.envelope), {}};
    for (size_t k : batch) {
        job.recipients.push_back(m.state.rcpts[k].to);
        job.rcpt_params.push_back(rcpt_params(m.envelope, m.state.rcpts[k].index));
    }

    // A first attempt (no state file, every recipient queued) saves nothing: after a crash the
    // restart finds the recipients queued and tries them again; ferry-mda's delivery record answers
    // "already delivered" for a copy it made (ferry-spool(5), STATES AND RECOVERY). A state file
    // still on the commit threads counts as one.
    bool first = !m.on_disk && m.save_gen == 0 && std::all_of(batch.begin(), batch.end(), [&](size_t k) {
        return m.state.rcpts[k].status == RcptStatus::queued;
    });
    auto h = std::make_shared<HandOff>(HandOff{id, std::move(batch), {}, socket, dest, std::move(job)});
    for (size_t k : h->rcpts) h->before.push_back(m.state.rcpts[k]);
    for (size_t k : h->rcpts) apply(id, m, k, Event{EventKind::handed_off}, relay, now);
    // Until its transaction starts, the hand-off holds its message and a slot of its destination.
    ++m.busy;
    ++handing_off_;
    if (!dest.empty()) dests_.started(dest, now);
    if (first) {
        launch(*h, true);
        return messages_.count(id) > 0;
    }
    // A retry: the RCPTs go out once handed_off is on disk, saved on the commit threads.
    save_then(id, m, [this, h](bool ok) { launch(*h, ok); });
    return true;
}

void Scheduler::launch(HandOff& h, bool saved) {
    --handing_off_;
    auto mit = messages_.find(h.id);
    if (mit == messages_.end()) log::panic("%s: hand-off of a message not in memory", h.id.c_str());
    Message& m = mit->second;
    int64_t now = clock_.mono();
    const std::string relay = h.dest.empty() ? "local" : "ferry-relay";
    auto undo = [&] {
        --m.busy;
        if (!h.dest.empty()) {
            dests_.cancelled(h.dest);
            release(h.dest, now);
        }
        fresh_.insert(h.id);
        kick();
    };
    if (!saved) {
        // Nothing went out: as it is on disk, but for the recipients of transactions in flight.
        for (size_t i = 0; i < h.rcpts.size(); ++i) m.state.rcpts[h.rcpts[i]] = h.before[i];
        undo();
        return;
    }
    test_pause_point(config_, "qmgr-before-handoff", h.id);
    // ferry-relay answers only after the whole SMTP transfer, whose own timeouts it must outlast.
    double timeout = h.socket == mda_socket_ ? lmtp_timeout_ : relay_timeout_;
    std::unique_ptr<LmtpClient> idle = h.socket == mda_socket_ ? take_idle_lmtp() : nullptr;
    if (idle) idle->reuse(std::move(h.job), timeout);
    auto client = idle ? Result<std::unique_ptr<LmtpClient>>(std::move(idle))
                       : LmtpClient::start(base_, h.socket, helo_, timeout, std::move(h.job), this);
    if (client && h.socket == mda_socket_) (*client)->allow_reuse();
    if (!client) {
        // The delivery agent (or ferry-relay) is down: every recipient waits for the next try, nothing is lost.
        for (size_t k : h.rcpts)
            apply(h.id, m, k, Event{EventKind::no_reply, 0, false, client.error().what()}, relay, now);
        undo();
        settle(h.id);
        return;
    }
    LmtpClient* c = client->get();
    Transaction tr{h.id, std::move(h.rcpts), std::move(client.value())};
    tr.dest = h.dest;
    active_.emplace(c, std::move(tr));
}

// Each answer is recorded as it comes: a crash later in the transaction does not lose it.
void Scheduler::lmtp_reply(LmtpClient& client, size_t index, const LmtpReply& reply, bool after_dot) {
    // Invariants, not peer input: a client reports for a message it was given, one reply per
    // recipient. Breaking one aborts.
    auto t = active_.find(&client);
    if (t == active_.end()) log::panic("LMTP reply from an unknown transaction");
    Transaction& tr = t->second;
    auto mit = messages_.find(tr.id);
    if (mit == messages_.end()) log::panic("%s: LMTP reply for a message not in memory", tr.id.c_str());
    if (index >= tr.rcpts.size()) log::panic("%s: LMTP reply for recipient %zu of %zu", tr.id.c_str(), index, tr.rcpts.size());
    if (!tr.paused) {
        tr.paused = true;
        test_pause_point(config_, "qmgr-after-handoff", tr.id);
    }
    Message& m = mit->second;
    // "452 4.5.3 too many recipients" (RFC 5321 4.5.3.1.10) asks for another transaction, not a
    // retry later; it is honoured at the end, only when the agent took some recipient (no loop).
    if (!after_dot && too_many_recipients(reply)) {
        tr.too_many.emplace_back(index, reply.text);
        return;
    }
    tr.progress |= reply.ok();
    tr.lost |= reply.code == 0;
    tr.replied = true;
    tr.down &= destination_down(reply);
    Event e{reply.code ? EventKind::reply : EventKind::no_reply, reply.code, after_dot, reply.text};
    std::string relay = tr.dest.empty() ? "local" : reply.code ? relay_host_of(reply.text) : "ferry-relay";
    // Saved at the transaction's end (settle), and only when some recipient needs a retry: an
    // answer lost in a crash before then is asked again (ferry-mda's record answers "already delivered").
    apply(tr.id, m, tr.rcpts[index], e, relay, clock_.mono());
}

// The most recently parked connection that is still open (one closing meanwhile is dropped).
std::unique_ptr<LmtpClient> Scheduler::take_idle_lmtp() {
    while (!idle_lmtp_.empty()) {
        auto c = std::move(idle_lmtp_.back());
        idle_lmtp_.pop_back();
        if (c->reusable()) return c;
    }
    return nullptr;
}

void Scheduler::lmtp_closed(LmtpClient& client) {
    auto idle = std::find_if(idle_lmtp_.begin(), idle_lmtp_.end(), [&](const auto& c) { return c.get() == &client; });
    if (idle != idle_lmtp_.end()) {
        idle_lmtp_.erase(idle);  // its connection ended while it waited (the idle time, ferry-mda gone)
        return;
    }
    auto t = active_.find(&client);
    if (t == active_.end()) log::panic("LMTP close of an unknown transaction");
    // Kept for the next local delivery: no connection, greeting, LHLO and QUIT per message.
    if (client.reusable() && idle_lmtp_.size() < max_deliveries_) {
        client.park(kLmtpIdleSeconds);
        idle_lmtp_.push_back(std::move(t->second.client));
    }
    std::string id = t->second.id;
    std::vector<std::pair<size_t, std::string>> too_many;
    for (const auto& [i, text] : t->second.too_many) too_many.emplace_back(t->second.rcpts[i], text);
    bool progress = t->second.progress;
    std::string dest = t->second.dest;
    bool lost = t->second.lost && !t->second.progress;
    // A ferry-relay that died (or hung) during the transfer without delivering anything counts as a
    // failure of the destination, like a peer that cannot be reached: a crash must not reset the back-off.
    bool down = (t->second.replied && t->second.down && too_many.empty()) || lost;
    active_.erase(t);  // destroys the client; its stream allows that from on_close
    int64_t now = clock_.mono();
    if (!dest.empty() && dests_.finished(dest, now, down))
        log::info("destination %s: %s; held back, other destinations go on", dest.c_str(),
                  lost ? "the transfer ended without replies" : "no host could be reached");
    if (auto mit = messages_.find(id); mit != messages_.end()) {
        Message& m = mit->second;
        --m.busy;
        for (const auto& [k, text] : too_many)
            apply(id, m, k, progress ? Event{EventKind::too_many} : Event{EventKind::reply, 452, false, text},
                  dest.empty() ? "local" : "ferry-relay", now);
        settle(id);
        fresh_.insert(id);
    }
    if (!dest.empty()) release(dest, now);
    kick();
}

// Saves, then reports failures and delays to the sender, then removes the message once every
// recipient is final. Each step needs the one before it on disk.
void Scheduler::settle(const std::string& id) {
    auto it = messages_.find(id);
    if (it == messages_.end()) return;
    Message& m = it->second;
    send_success(id, m);
    // A message whose recipients are all final is removed: its state would be saved for nothing.
    // The save runs on the commit threads; the steps after it need it on disk.
    if (!complete(m) && needs_record(m)) {
        save_then(id, m, [this, id](bool ok) {
            if (ok) settle_saved(id);
        });
        return;
    }
    settle_saved(id);
}

void Scheduler::settle_saved(const std::string& id) {
    auto it = messages_.find(id);
    if (it == messages_.end()) return;
    Message& m = it->second;
    if (!complete(m)) {
        int64_t now = clock_.mono();
        send_bounces(id, m, now);
        if (m.unsaved) return;
        warn_if_due(id, m, now);
        if (m.unsaved || !complete(m)) return;
    }
    if (m.busy) return;  // removed when its last transaction ends
    remove_message(it);
}

bool Scheduler::needs_record(const Message& m) const {
    if (m.on_disk || m.unsaved || m.state.held || m.state.warned) return true;
    return std::any_of(m.state.rcpts.begin(), m.state.rcpts.end(), [](const RcptState& r) {
        return r.status == RcptStatus::deferred || r.status == RcptStatus::unknown ||
               r.status == RcptStatus::unresolved || r.status == RcptStatus::failed;
    });
}

// Only local deliveries: a queue file brought back by a crash meets ferry-mda's delivery records,
// so no fsync. Otherwise the unlink must be on disk before the state file goes; that fsync runs on
// the worker, and the message is forgotten at once (its queue file is gone for every scan).
void Scheduler::remove_message(std::map<std::string, Message>::iterator it) {
    std::string id = it->first;
    Queue::end_saves(*it->second.slot);  // a save still on the commit threads must not bring state/<id> back
    if (!it->second.sync_removal) {
        if (auto r = queue_.remove_unsynced(id); !r) {
            log::errorx("%s: %s", id.c_str(), r.error().what().c_str());
            return;
        }
        log::info("%s: removed", id.c_str());
        messages_.erase(it);
        return;
    }
    if (auto r = queue_.retire_queue_file(id); !r) {
        log::errorx("%s: %s", id.c_str(), r.error().what().c_str());
        return;
    }
    messages_.erase(it);
    if (!pool_) {
        if (auto r = queue_.sync_and_unlink_state(id); !r) log::errorx("%s: %s", id.c_str(), r.error().what().c_str());
        else log::info("%s: removed", id.c_str());
        return;
    }
    // A state file left by a failure here, or by a stop before the job ran, is an orphan the next start removes.
    auto failure = std::make_shared<std::string>();
    const Queue* queue = &queue_;
    pool_->submit(
        [queue, id, failure] {
            if (auto r = queue->sync_and_unlink_state(id); !r) *failure = r.error().what();
        },
        [id, failure] {
            if (!failure->empty()) log::errorx("%s: %s", id.c_str(), failure->c_str());
            else log::info("%s: removed", id.c_str());
        });
}

// The order of commits (ferry-spool(5)): `failed` with the bounce's queue id is saved first, then
// the bounce committed under that id, then `bounced` saved. A restart between any two finds the
// failed record and commits the bounce only if queue/<bounce id> is not there: one report, and a
// failed recipient is never handed off again.
void Scheduler::send_bounces(const std::string& id, Message& m, int64_t now) {
    std::vector<size_t> plan;
    std::map<std::string, std::vector<size_t>> commit;
    for (size_t k = 0; k < m.state.rcpts.size(); ++k) {
        Next n = next_action(m.state.rcpts[k], now);
        if (n == Next::plan_bounce) plan.push_back(k);
        else if (n == Next::commit_bounce) commit[m.state.rcpts[k].bounce_id].push_back(k);
    }
    if (plan.empty() && commit.empty()) return;
    // RFC 3461 4.1: NOTIFY=NEVER, or a NOTIFY without FAILURE, asks for no report of a failure.
    auto unwanted = std::stable_partition(plan.begin(), plan.end(), [&](size_t k) {
        return dsn::wants_failure(notify_bits(m.envelope, m.state.rcpts[k].index));
    });
    for (auto k = unwanted; k != plan.end(); ++k) {
        log::info("%s: to=<%s>: no bounce: NOTIFY=%s", id.c_str(), m.state.rcpts[*k].to.c_str(),
                  m.envelope.dsn_of(m.state.rcpts[*k].index).notify.c_str());
        apply(id, m, *k, Event{EventKind::bounce_committed}, "none", now);
    }
    if (unwanted != plan.end()) {
        plan.erase(unwanted, plan.end());
        if (!save(id, m)) return;
        if (plan.empty() && commit.empty()) return;
    }
    if (!dsn::should_report(m.envelope.sender)) {
        log::info("%s: no bounce for null sender", id.c_str());
        for (size_t k = 0; k < m.state.rcpts.size(); ++k)
            if (m.state.rcpts[k].status == RcptStatus::failed)
                apply(id, m, k, Event{EventKind::bounce_committed}, "none", now);
        save(id, m);
        return;
    }
    if (!plan.empty()) {
        std::string bounce_id = spool::new_queue_id();
        for (size_t k : plan) apply(id, m, k, Event{EventKind::bounce_planned, 0, false, bounce_id}, "none", now);
        if (!save(id, m)) return;
        auto& list = commit[bounce_id];
        list.insert(list.end(), plan.begin(), plan.end());
    }
    for (const auto& [bounce_id, which] : commit)
        if (!commit_bounce(id, m, bounce_id, which, now)) return;
    save(id, m);
}

// False when the state could not be saved (the message then waits for a save).
bool Scheduler::commit_bounce(const std::string& id, Message& m, const std::string& bounce_id,
                              const std::vector<size_t>& which, int64_t now) {
    auto there = queue_file_exists(queue_, bounce_id);
    if (there && *there) {
        log::info("%s: sender non-delivery notification %s is queued already", id.c_str(), bounce_id.c_str());
    } else {
        // The id was taken by another message before this bounce was written: the new one is saved first.
        auto before_commit = [&](const std::string& taken) -> Result<void> {
            if (taken == bounce_id) return {};
            log::warnx("%s: queue id %s is taken; the bounce is queued as %s", id.c_str(), bounce_id.c_str(), taken.c_str());
            for (size_t k : which) apply(id, m, k, Event{EventKind::bounce_planned, 0, false, taken}, "none", now);
            if (!save(id, m)) return make_error(0, "", "cannot save recipient state");
            return {};
        };
        test_pause_point(config_, "qmgr-before-bounce", id);
        auto report = there ? queue_notice(id, m, which, dsn::Action::failed, bounce_id, before_commit)
                            : Result<std::string>(there.error());
        if (!report) {
            log::errorx("%s: cannot queue the bounce, trying again later: %s", id.c_str(), report.error().what().c_str());
            for (size_t k : which) apply(id, m, k, Event{EventKind::bounce_failed}, "none", now);
            return !m.unsaved;
        }
        log::info("%s: sender non-delivery notification: %s", id.c_str(), report->c_str());
        // The commit itself may have had to take another id (queue/<id> appeared meanwhile).
        if (*report != m.state.rcpts[which.front()].bounce_id)
            for (size_t k : which) apply(id, m, k, Event{EventKind::bounce_planned, 0, false, *report}, "none", now);
        test_pause_point(config_, "qmgr-after-bounce", id);
        add(*report, false);
        kick();
    }
    for (size_t k : which) apply(id, m, k, Event{EventKind::bounce_committed}, "none", now);
    return true;
}

// When the next delay warning is due, kNever for none: once per message, after delay_warning_time,
// while some recipient still waits for a retry, and only when it comes before the message expires.
// An unknown recipient may have been delivered: it asks for no warning.
int64_t Scheduler::warning_due(const Message& m) const {
    if (warn_after_ <= 0 || warn_after_ >= lifetime_ || m.state.warned) return kNever;
    // A recipient still queued after delay_warning_time waits for a destination held back.
    bool waiting = std::any_of(m.state.rcpts.begin(), m.state.rcpts.end(), [](const RcptState& r) {
        return r.status == RcptStatus::deferred || r.status == RcptStatus::unresolved || r.status == RcptStatus::queued;
    });
    return waiting ? std::max(m.arrived + warn_after_, m.warn_retry) : kNever;
}

void Scheduler::warn_if_due(const std::string& id, Message& m, int64_t now) {
    if (warning_due(m) > now) return;
    std::vector<size_t> which;
    for (size_t k = 0; k < m.state.rcpts.size(); ++k)
        if ((m.state.rcpts[k].status == RcptStatus::deferred || m.state.rcpts[k].status == RcptStatus::unresolved ||
             m.state.rcpts[k].status == RcptStatus::queued) &&
            dsn::wants_delay(notify_bits(m.envelope, m.state.rcpts[k].index)))  // RFC 3461 4.1
            which.push_back(k);
    if (!dsn::should_report(m.envelope.sender) || which.empty()) {
        log::info("%s: no delay warning for %s", id.c_str(), which.empty() ? "NOTIFY without DELAY" : "null sender");
        m.state.warned = clock_.wall();
        save(id, m);
        return;
    }
    auto report = queue_notice(id, m, which, dsn::Action::delayed, spool::new_queue_id(), {});
    if (!report) {
        log::errorx("%s: cannot queue the delay warning, trying again later: %s", id.c_str(),
                    report.error().what().c_str());
        m.warn_retry = next_attempt_time(retry_schedule_, 1, now);
        return;
    }
    log::info("%s: sender delay notification: %s", id.c_str(), report->c_str());
    test_pause_point(config_, "qmgr-after-warning", id);
    m.state.warned = clock_.wall();
    save(id, m);
    add(*report, false);
    kick();
}

void Scheduler::send_success(const std::string& id, Message& m) {
    std::vector<size_t> delivered, relayed;
    for (size_t k : m.success_due) {
        std::string why;
        if (k >= m.state.rcpts.size()) continue;
        // A relayed recipient's report is the next hop's to send when it offers DSN (RFC 3461
        // 5.2.2); ferry-relay's reply says when it does not, and the report is "relayed" (5.2.1).
        if (route(m.state.rcpts[k].to, why) == Route::local) delivered.push_back(k);
        else if (dsn::relayed_without_dsn(m.state.rcpts[k].reply)) relayed.push_back(k);
    }
    m.success_due.clear();
    if (!dsn::should_report(m.envelope.sender)) return;
    send_success_report(id, m, delivered, dsn::Action::delivered);
    send_success_report(id, m, relayed, dsn::Action::relayed);
}

void Scheduler::send_success_report(const std::string& id, Message& m, const std::vector<size_t>& which,
                                    dsn::Action action) {
    if (which.empty()) return;
    auto report = queue_notice(id, m, which, action, spool::new_queue_id(), {});
    if (!report) {
        log::errorx("%s: cannot queue the %s notification: %s", id.c_str(), dsn::action_name(action),
                    report.error().what().c_str());
        return;
    }
    log::info("%s: sender %s notification: %s", id.c_str(), action == dsn::Action::delivered ? "delivery" : "relay",
              report->c_str());
    m.sync_removal = true;  // a repeated delivery would report again
    add(*report, false);
    kick();
}

// Dates in a report are wall-clock: they are for people.
Result<std::string> Scheduler::queue_notice(const std::string& id, const Message& m, const std::vector<size_t>& which,
                                            dsn::Action action, const std::string& report_id,
                                            const std::function<Result<void>(const std::string&)>& before_commit) {
    // Only the header section is quoted, so only it is read: the body stays on disk.
    auto original = queue_.open_message(id);
    if (!original) return original.error();
    if (original->status == spool::OpenedMessage::Status::missing)
        return make_error(0, "", "queue file " + id + " is gone");
    if (original->status != spool::OpenedMessage::Status::ok)
        return make_error(0, "", "corrupt queue file " + id + ": " + original->why);
    auto header = returns_full(m.envelope, action) ? read_message(original->data) : read_header(original->data);
    if (!header) return header.error();
    std::vector<const RcptState*> rcpts;
    for (size_t k : which) rcpts.push_back(&m.state.rcpts[k]);
    int64_t wall = clock_.wall();
    int64_t expires = m.envelope.arrival + lifetime_;
    auto report = make_report(m.envelope, *header, rcpts, action, helo_, expires, wall);
    return queue_report(queue_.dir(), std::move(report), report_id, before_commit);
}

}  // namespace ferry::qmgr
