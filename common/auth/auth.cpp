// Password checks off the event loop, with a delay after each failure and a per-address failure limit.
#include "common/auth/auth.hpp"

#include <algorithm>
#include <cstring>
#include <deque>
#include <unordered_map>

#include "common/base/log.hpp"
#include "common/event/event.hpp"
#include "common/event/stream.hpp"
#include "common/event/worker_pool.hpp"
#include "common/auth/scram.hpp"

namespace ferry {

namespace {

using Clock = std::chrono::steady_clock;

// Bounds the failure table: an address spraying from many sources cannot grow it without limit.
constexpr size_t kMaxTrackedAddresses = 65536;

// Checks that may wait for or run crypt at once, per worker; beyond that check() answers tempfail,
// so a flood of logins costs a bounded queue, not unbounded memory and CPU.
constexpr size_t kQueuePerWorker = 64;

// Overwrites a password before its memory is freed.
void wipe(std::string& s) {
    if (!s.empty()) explicit_bzero(s.data(), s.size());
    s.clear();
}

}  // namespace

// One crypt(3) comparison (or SCRAM proof check), shared by the worker that runs it and the loop
// that reads `match`. The password is wiped however the job ends: run, taken off the queue, or
// dropped at shutdown.
struct CryptJob {
    std::string password;
    std::string hash;    // crypt(3), or the account's SCRAM keys
    std::string user;
    std::shared_ptr<const sasl::ScramServer> scram;  // a SCRAM exchange to verify instead of a password
    bool dummy = false;  // unknown user: compare anyway for equal timing, then report a failure
    bool match = false;  // written by the worker, read on the loop after the pool's hand-over
    ~CryptJob() { wipe(password); }

    void run(const std::string& dummy_hash) {
        if (scram) {
            auto keys = dummy ? std::optional<sasl::ScramKeys>(sasl::scram_dummy(user)) : sasl::scram_decode(hash);
            match = keys && scram->verify(*keys) && !dummy;
        } else {
            match = verify_password(password, dummy ? dummy_hash : hash) && !dummy;
        }
        wipe(password);
    }
};

struct Authenticator::Impl {
    struct Pending {
        Impl* impl;
        uint64_t id;
        std::string client_ip;
        Callback cb;
        AuthResult result;
        EventPtr timer;
        WorkerPool::JobId job = 0;  // the crypt job, while in_crypt holds this check
        std::shared_ptr<CryptJob> waiting_job;  // set while the check waits in its address's queue
    };

    Impl(event_base* b, AccountStore& s, const AuthSettings& st) : base(b), store(s), settings(st) {}

    event_base* base;
    AccountStore& store;
    AuthSettings settings;
    std::string dummy_hash;
    std::unique_ptr<WorkerPool> pool;  // crypt(3) runs here

    // Loop-thread only from here on.
    std::unordered_map<uint64_t, std::unique_ptr<Pending>> pending;
    std::unordered_map<std::string, std::deque<Clock::time_point>> failures;
    // Checks whose crypt is queued or running (id -> client address; "" once cancelled, when the
    // failure is already recorded), and their count per address: parallel guesses count against
    // auth_max_failures before they finish.
    std::unordered_map<uint64_t, std::string> in_crypt;
    std::unordered_map<std::string, int> in_flight;
    // Checks waiting for their address's allowance (auth_max_failures minus recent failures minus
    // checks in crypt), oldest first; they start as earlier checks finish.
    std::unordered_map<std::string, std::deque<uint64_t>> queued;
    size_t queued_total = 0;
    uint64_t next_id = 1;

    static void on_timer(evutil_socket_t, short, void* arg) noexcept;
    void deliver_later(Pending& p, std::chrono::milliseconds delay);
    void complete(uint64_t id, bool match);
    std::deque<Clock::time_point>* prune(const std::string& ip);
    void record_failure(const std::string& ip);
    void trim_table();
    size_t queue_limit() const;
    enum class Admit { run, wait, refuse };
    Admit admit(const std::string& ip, bool queue_empty);
    void start_crypt(Pending& p, std::shared_ptr<CryptJob> job);
    void refuse(Pending& p);
    void advance(const std::string& ip);
    bool unqueue(uint64_t id, const std::string& ip);
    void release_in_flight(std::string& ip);
    std::string crypt_finished(uint64_t id);
    void cancel(uint64_t id);
};

AuthSettings AuthSettings::from_config(const Config& config) {
    AuthSettings s;
    s.workers = static_cast<int>(config.integer("auth_workers"));
    s.failure_delay = config.duration("auth_failure_delay");
    s.max_failures = static_cast<int>(config.integer("auth_max_failures"));
    s.failure_window = config.duration("auth_failure_window");
    s.max_queued = static_cast<int>(config.integer("auth_max_queued"));
    return s;
}

void Authenticator::Impl::complete(uint64_t id, bool match) {
    std::string ip = crypt_finished(id);
    auto it = pending.find(id);
    if (it != pending.end()) {  // else cancelled: the session went away, and that was counted then
        Pending& p = *it->second;
        if (match) {
            p.result.status = AuthResult::ok;
            deliver_later(p, std::chrono::milliseconds(0));
        } else {
            p.result.status = AuthResult::failed;
            if (p.result.detail.empty()) p.result.detail = "wrong password";
            record_failure(p.client_ip);
            deliver_later(p, settings.failure_delay);
        }
    }
    if (!ip.empty()) advance(ip);
}

// Every result goes through a timer, so callbacks never run inside check() or a worker wake-up batch.
void Authenticator::Impl::deliver_later(Pending& p, std::chrono::milliseconds delay) {
    p.timer.reset(evtimer_new(base, on_timer, &p));
    timeval tv = to_timeval(static_cast<double>(delay.count()) / 1000.0);
    evtimer_add(p.timer.get(), &tv);
}

void Authenticator::Impl::on_timer(evutil_socket_t, short, void* arg) noexcept {
    auto* p = static_cast<Pending*>(arg);
    Impl* impl = p->impl;
    auto it = impl->pending.find(p->id);
    if (it == impl->pending.end()) return;
    std::unique_ptr<Pending> owned = std::move(it->second);
    impl->pending.erase(it);  // a ticket reset from inside the callback is now a no-op
    if (owned->cb) owned->cb(owned->result);
}

// The failures still inside the window for `ip`, or nullptr when none.
std::deque<Clock::time_point>* Authenticator::Impl::prune(const std::string& ip) {
    auto it = failures.find(ip);
    if (it == failures.end()) return nullptr;
    auto cutoff = Clock::now() - settings.failure_window;
    auto& times = it->second;
    while (!times.empty() && times.front() < cutoff) times.pop_front();
    if (times.empty()) {
        failures.erase(it);
        return nullptr;
    }
    return &times;
}

void Authenticator::Impl::record_failure(const std::string& ip) {
    if (settings.max_failures <= 0) return;
    auto& times = failures[ip];
    times.push_back(Clock::now());
    while (times.size() > static_cast<size_t>(settings.max_failures)) times.pop_front();
    if (failures.size() > kMaxTrackedAddresses) trim_table();
}

// Drops expired entries; if the table is still full, forgets the address whose last failure is oldest.
void Authenticator::Impl::trim_table() {
    auto cutoff = Clock::now() - settings.failure_window;
    for (auto it = failures.begin(); it != failures.end();)
        it = it->second.back() < cutoff ? failures.erase(it) : std::next(it);
    while (failures.size() > kMaxTrackedAddresses) {
        auto oldest = failures.begin();
        for (auto it = failures.begin(); it != failures.end(); ++it)
            if (it->second.back() < oldest->second.back()) oldest = it;
        failures.erase(oldest);
    }
}

size_t Authenticator::Impl::queue_limit() const {
    return kQueuePerWorker * static_cast<size_t>(settings.workers < 1 ? 1 : settings.workers);
}

// Recorded failures plus checks in crypt make up the allowance: 50 guesses sent at once run only as
// many crypts as auth_max_failures, the rest wait; only recorded failures refuse an address.
Authenticator::Impl::Admit Authenticator::Impl::admit(const std::string& ip, bool queue_empty) {
    if (settings.max_failures <= 0) return Admit::run;
    auto* times = prune(ip);
    size_t count = times ? times->size() : 0;
    if (count >= static_cast<size_t>(settings.max_failures)) return Admit::refuse;
    if (auto it = in_flight.find(ip); it != in_flight.end()) count += static_cast<size_t>(it->second);
    return queue_empty && count < static_cast<size_t>(settings.max_failures) ? Admit::run : Admit::wait;
}

void Authenticator::Impl::start_crypt(Pending& p, std::shared_ptr<CryptJob> job) {
    uint64_t id = p.id;
    p.job = pool->submit(
        [job, dummy = dummy_hash] { job->run(dummy); },
        [this, id, job] { complete(id, job->match); });
    in_crypt.emplace(id, p.client_ip);
    ++in_flight[p.client_ip];
}

// auth_max_failures reached: answered like a wrong password, after the delay, without crypt.
void Authenticator::Impl::refuse(Pending& p) {
    p.waiting_job.reset();
    p.result.status = AuthResult::refused;
    p.result.detail = "too many authentication failures from " + p.client_ip;
    deliver_later(p, settings.failure_delay);
}

// Starts the checks waiting for `ip` that its allowance now admits, or refuses them all once its
// failures reached the limit (they would otherwise wait for the whole window).
void Authenticator::Impl::advance(const std::string& ip) {
    auto q = queued.find(ip);
    while (q != queued.end() && !q->second.empty()) {
        Admit a = admit(ip, true);
        if (a == Admit::wait) return;
        uint64_t id = q->second.front();
        q->second.pop_front();
        --queued_total;
        auto it = pending.find(id);
        if (it == pending.end()) continue;
        Pending& p = *it->second;
        if (a == Admit::refuse) refuse(p);
        else start_crypt(p, std::move(p.waiting_job));
    }
    if (q != queued.end()) queued.erase(q);
}

// Takes a waiting check out of its address's queue: true when it was there.
bool Authenticator::Impl::unqueue(uint64_t id, const std::string& ip) {
    auto q = queued.find(ip);
    if (q == queued.end()) return false;
    auto pos = std::find(q->second.begin(), q->second.end(), id);
    if (pos == q->second.end()) return false;
    q->second.erase(pos);
    --queued_total;
    if (q->second.empty()) queued.erase(q);
    return true;
}

void Authenticator::Impl::release_in_flight(std::string& ip) {
    if (ip.empty()) return;
    auto f = in_flight.find(ip);
    if (f != in_flight.end() && --f->second <= 0) in_flight.erase(f);
    ip.clear();
}

// Forgets a check's crypt; returns the address it was counted against ("" if none any more).
std::string Authenticator::Impl::crypt_finished(uint64_t id) {
    auto it = in_crypt.find(id);
    if (it == in_crypt.end()) return {};
    std::string ip = it->second;
    release_in_flight(it->second);
    in_crypt.erase(it);
    return ip;
}

// The client went away. If its crypt had not answered yet, that counts as a failure for its address:
// otherwise "AUTH, then hang up" would be free guessing. A queued job never runs. A check still
// waiting for its address's allowance ran nothing and told nothing: it just leaves the queue.
void Authenticator::Impl::cancel(uint64_t id) {
    auto it = pending.find(id);
    if (it == pending.end()) return;
    std::string ip = it->second->client_ip;
    if (it->second->waiting_job) unqueue(id, ip);
    bool counted = false;
    if (auto c = in_crypt.find(id); c != in_crypt.end()) {
        log::debug("auth: check from %s abandoned before its result; counted as a failure", c->second.c_str());
        record_failure(c->second);
        release_in_flight(c->second);  // now counted as a failure instead
        if (pool->cancel(it->second->job)) in_crypt.erase(c);  // else it occupies a worker until the answer
        counted = true;
    }
    pending.erase(it);
    if (counted) advance(ip);
}

Authenticator::Authenticator(event_base* base, AccountStore& store, const AuthSettings& settings)
    : impl_(std::make_unique<Impl>(base, store, settings)) {
    auto dummy = hash_password("ferry dummy password for unknown users");
    if (dummy) impl_->dummy_hash = std::move(dummy.value());
    else log::warnx("auth: cannot make the dummy hash: %s", dummy.error().what().c_str());
    impl_->pool = std::make_unique<WorkerPool>(base, settings.workers);
}

Authenticator::~Authenticator() {
    impl_->pool.reset();  // joins the workers; queued jobs are dropped and their passwords wiped
    impl_->pending.clear();
}

AuthTicket Authenticator::check(std::string user, std::string password, std::string client_ip, Callback cb) {
    auto job = std::make_shared<CryptJob>();
    job->password.assign(password);  // a copy, so the caller's buffer can be wiped whatever its size
    wipe(password);
    return submit(std::move(user), std::move(job), std::move(client_ip), std::move(cb));
}

AuthTicket Authenticator::check_scram(std::string user, std::shared_ptr<const sasl::ScramServer> exchange,
                                      std::string client_ip, Callback cb) {
    auto job = std::make_shared<CryptJob>();
    job->scram = std::move(exchange);
    return submit(std::move(user), std::move(job), std::move(client_ip), std::move(cb));
}

Result<sasl::ScramKeys> Authenticator::scram_keys(const std::string& user) {
    auto account = impl_->store.account(normalize_address(user));
    if (!account) return account.error();
    if (*account)
        if (auto keys = sasl::scram_decode((*account)->scram)) return *keys;
    return sasl::scram_dummy(normalize_address(user));
}

AuthTicket Authenticator::submit(std::string user, std::shared_ptr<CryptJob> job, std::string client_ip, Callback cb) {
    Impl& im = *impl_;
    uint64_t id = im.next_id++;
    auto p = std::make_unique<Impl::Pending>();
    p->impl = &im;
    p->id = id;
    p->client_ip = std::move(client_ip);
    p->cb = std::move(cb);
    p->result.user = normalize_address(user);
    Impl::Pending& ref = *p;
    im.pending.emplace(id, std::move(p));

    auto queue = im.queued.find(ref.client_ip);
    Impl::Admit admit = im.admit(ref.client_ip, queue == im.queued.end());
    if (admit == Impl::Admit::refuse) {
        im.refuse(ref);
        return AuthTicket(this, id);
    }
    std::string busy;
    size_t total = im.in_crypt.size() + im.queued_total;
    size_t ahead = queue == im.queued.end() ? 0 : queue->second.size();
    if (total >= im.queue_limit())
        busy = "too many password checks waiting (" + std::to_string(total) + ")";
    else if (admit == Impl::Admit::wait && ahead >= static_cast<size_t>(std::max(im.settings.max_queued, 0)))
        busy = "too many password checks waiting from " + ref.client_ip;
    if (!busy.empty()) {
        ref.result.status = AuthResult::tempfail;
        ref.result.detail = std::move(busy);
        im.deliver_later(ref, std::chrono::milliseconds(0));
        return AuthTicket(this, id);
    }
    auto account = im.store.account(ref.result.user);
    if (!account) {
        ref.result.status = AuthResult::tempfail;
        ref.result.detail = "account lookup: " + account.error().what();
        im.deliver_later(ref, std::chrono::milliseconds(0));
        return AuthTicket(this, id);
    }
    job->user = ref.result.user;
    job->dummy = !account.value().has_value();
    if (job->dummy) ref.result.detail = "unknown user";
    if (!job->dummy) job->hash = job->scram ? account.value()->scram : account.value()->password_hash;
    if (job->scram && !job->dummy && job->hash.empty()) {
        job->dummy = true;  // made before SCRAM keys were kept: its password must be set again
        ref.result.detail = "no SCRAM keys for this account (set its password again)";
    }
    if (admit == Impl::Admit::run) {
        im.start_crypt(ref, std::move(job));
    } else {
        ref.waiting_job = std::move(job);
        im.queued[ref.client_ip].push_back(id);
        ++im.queued_total;
    }
    return AuthTicket(this, id);
}

AuthTicket start_login_check(Authenticator& auth, Stream& stream, std::string user, std::string password,
                             std::shared_ptr<const sasl::ScramServer> scram, Authenticator::Callback cb) {
    stream.pause_input();
    stream.set_idle_timeout(0);
    if (scram) {
        wipe(password);
        return auth.check_scram(std::move(user), std::move(scram), stream.peer(), std::move(cb));
    }
    return auth.check(std::move(user), std::move(password), stream.peer(), std::move(cb));
}

void LoginCheck::check_password(std::string user, std::string password, std::shared_ptr<const sasl::ScramServer> scram) {
    ticket_ = start_login_check(auth_, stream_, std::move(user), std::move(password), std::move(scram), on_result_);
}

int Authenticator::failures(const std::string& client_ip) {
    auto* times = impl_->prune(client_ip);
    return times ? static_cast<int>(times->size()) : 0;
}

size_t Authenticator::waiting() const { return impl_->in_crypt.size() + impl_->queued_total; }

void Authenticator::cancel(uint64_t id) { impl_->cancel(id); }
bool Authenticator::is_pending(uint64_t id) const { return impl_->pending.count(id) != 0; }

AuthTicket::AuthTicket(AuthTicket&& o) noexcept : auth_(std::exchange(o.auth_, nullptr)), id_(o.id_) {}

AuthTicket& AuthTicket::operator=(AuthTicket&& o) noexcept {
    if (this != &o) {
        reset();
        auth_ = std::exchange(o.auth_, nullptr);
        id_ = o.id_;
    }
    return *this;
}

void AuthTicket::reset() {
    if (auth_) auth_->cancel(id_);
    auth_ = nullptr;
}

bool AuthTicket::pending() const { return auth_ && auth_->is_pending(id_); }

bool plaintext_allowed(std::string_view policy, bool tls_active, bool peer_is_loopback) {
    if (tls_active || policy == "always") return true;
    if (policy == "loopback") return peer_is_loopback;
    return false;  // "never", and anything unknown fails closed
}

bool plaintext_allowed(const Config& config, bool tls_active, bool peer_is_loopback) {
    return plaintext_allowed(config.str("plaintext_auth"), tls_active, peer_is_loopback);
}

}  // namespace ferry
