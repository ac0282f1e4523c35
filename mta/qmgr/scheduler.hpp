// The scheduler: which recipients are due, alias expansion, routing, LMTP hand-off, its results, and the reports to the sender.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/auth/accounts.hpp"
#include "common/program/config.hpp"
#include "common/mail/dsn.hpp"
#include "common/event/commit_stage.hpp"
#include "common/event/event.hpp"
#include "common/event/worker_pool.hpp"
#include "common/proto/qmgr.hpp"
#include "mta/qmgr/destination.hpp"
#include "mta/qmgr/lmtp_client.hpp"
#include "mta/qmgr/queue.hpp"
#include "mta/qmgr/recipient.hpp"
#include "common/spool/state.hpp"

namespace ferry::qmgr {

class Scheduler final : public LmtpClient::Owner {
public:
    Scheduler(event_base* base, const Config& config, Queue& queue, AccountStore& accounts,
              const Clock& clock = system_clock());
    ~Scheduler() override;

    // Loads every queue file not yet known, forgets those that are gone; then runs. Also every
    // qmgr_scan_interval once start_timers() was called. With a worker (use_workers), the files
    // found are read against their checksum there, kVerifyChunk at a time, and loaded as each
    // chunk is done; without one, on the loop.
    void scan();
    static constexpr size_t kVerifyChunk = 256;
    // qmgr_gather_delay_ms is at most this: longer, a wait would be noticed.
    static constexpr int64_t kMaxGatherMs = 1000;

    // smtpd's "NEW <id>": load that file and run; while nothing is in flight, run after
    // qmgr_gather_delay_ms, so that the messages notified meanwhile start together.
    void notify(const std::string& id);
    void start_timers();
    // The worker that fsyncs queue/ for removals that need it; without one they sync on the loop.
    void use_workers(WorkerPool& pool) { pool_ = &pool; }
    // State saves of retries and results go through a commit stage of `threads` threads (after the
    // privileges are dropped); without one they run on the loop.
    void use_commit_stage(int threads);
    // The queue tools' FLUSH, HOLD, RELEASE, DELETE and REQUEUE (queue_control.cpp, ferry-qmgr(8)).
    proto::qmgr::Reply control(const proto::qmgr::Message& c);

    size_t queued() const { return messages_.size(); }

    void lmtp_reply(LmtpClient& client, size_t index, const LmtpReply& reply, bool after_dot) override;
    void lmtp_closed(LmtpClient& client) override;

    static const Clock& system_clock();

private:
    // Times in memory are on the monotonic clock (Clock::mono); the state file has wall-clock times.
    struct Message {
        spool::Envelope envelope;   // arrival: wall clock, for the reports
        MessageState state;
        int64_t arrived = 0;        // monotonic
        int busy = 0;               // its transactions in flight (local, one per remote domain)
        bool unsaved = false;       // the last save of its state failed: no work on it until one succeeds
        bool on_disk = false;       // state/<id> exists (loaded or saved): later changes are saved too
        bool sync_removal = false;  // a copy a repeated attempt would make again (relayed, bounced, reported)
        int64_t save_retry = 0;     // when unsaved: the next try
        uint64_t save_gen = 0;      // the number of its latest save (SaveSlot)
        uint64_t failed_gen = 0;    // the number of its latest save that failed: unsaved until a later one succeeds
        std::shared_ptr<SaveSlot> slot = std::make_shared<SaveSlot>();
        int64_t warn_retry = 0;     // after a delay warning could not be queued: not before this
        std::vector<size_t> success_due;  // delivered recipients that asked NOTIFY=SUCCESS, not yet reported
    };
    struct Transaction {
        std::string id;
        std::vector<size_t> rcpts;  // positions in Message::state.rcpts, in RCPT order
        std::unique_ptr<LmtpClient> client;
        std::string dest;           // the remote domain; empty for local delivery
        bool down = true;           // so far every reply said the destination could not be reached
        bool replied = false;       // some reply came
        bool progress = false;      // some recipient was delivered
        bool lost = false;          // some recipient got no reply at all (ferry-relay crashed or timed out)
        bool paused = false;        // the qmgr-after-handoff pause point was passed
        std::vector<std::pair<size_t, std::string>> too_many;  // positions in `rcpts` answered "452 4.5.3", the reply
    };
    // A hand-off whose recipients wait for their handed_off state on disk before the RCPTs go out.
    struct HandOff {
        std::string id;
        std::vector<size_t> rcpts;
        std::vector<RcptState> before;  // the same recipients as they were on disk
        std::string socket, dest;
        LmtpJob job;
    };
    enum class Route { local, relay, unknown };

    void kick();
    std::unique_ptr<LmtpClient> take_idle_lmtp();
    void run();
    bool visit(const std::string& id, int64_t now);
    // queue_control.cpp: each applies one control line; a message not loaded yet is looked for in queue/.
    Message* find_or_load(const std::string& id);
    proto::qmgr::Reply flush(const std::string& domain);
    proto::qmgr::Reply hold(const std::string& id, bool on);
    proto::qmgr::Reply remove(const std::string& id);
    proto::qmgr::Reply requeue(const std::string& id);
    void arm_timer(int64_t when, int64_t now);
    // `verify`: the file was found in queue/ rather than announced after its commit (Queue::load).
    bool add(const std::string& id, bool verify);
    // The next chunk of verifying_ on the worker; its completion adds those that matched.
    void verify_next();
    // The earliest time some recipient has work, kNever for none; recipients waiting for a
    // destination in `skip` do not count (their destination wakes the message).
    int64_t next_due(const Message& m, const std::set<std::string>& skip) const;
    void place(const std::string& id, int64_t now, const std::set<std::string>& blocked);
    void release(const std::string& dest, int64_t now);
    void wake_all();
    bool complete(const Message& m) const;
    Times times(const Message& m, int64_t now) const;

    // Applies one event to recipient `k` through transition() and logs the step.
    void apply(const std::string& id, Message& m, size_t k, const Event& e, const std::string& relay, int64_t now);
    // Writes the state file (times in wall-clock) on the loop; a failure marks the message unsaved.
    bool save(const std::string& id, Message& m);
    // The same through the commit stage: `then` runs on the loop once this state (or a newer one)
    // is on disk (true), or the save failed (false, the message is unsaved).
    void save_then(const std::string& id, Message& m, std::function<void(bool)> then);
    void saved(const std::string& id, uint64_t gen, const Result<void>& r);
    MessageState state_on_disk(const Message& m) const;
    // Starts the LMTP transaction of a hand-off, its state saved (or not needed); undoes it when not.
    void launch(HandOff& h, bool saved);
    size_t in_flight() const { return active_.size() + handing_off_; }

    // Starts what it may of the message's due work; `blocked` gets each destination that held some
    // of it back (dead, busy or rate-limited).
    void attempt(const std::string& id, Message& m, int64_t now, std::set<std::string>& blocked);
    // The due recipients of a dead destination wait for its end, quietly (logged once per destination);
    // true when one took another step than that wait (it expired) and the message needs settling.
    bool hold_back(const std::string& id, Message& m, const std::string& dest, const std::vector<size_t>& rcpts,
                   int64_t until, int64_t now);
    void expand(const std::string& id, Message& m, int64_t now);
    Route route(const std::string& to, std::string& why);
    // False when the message is gone (its queue file disappeared, or a failure settled it).
    bool hand_off(const std::string& id, Message& m, std::vector<size_t> batch, const std::string& socket,
                  const std::string& dest, int64_t now);
    // After any change: save, then bounces, delay warning, removal once every recipient is final.
    void settle(const std::string& id);
    // The steps of settle after the save (or none was needed).
    void settle_saved(const std::string& id);
    // Whether the state must be on disk: some recipient waits for a retry or a report, or a file is there.
    bool needs_record(const Message& m) const;
    // Every recipient is final and nothing is in flight: the queue file and the state file go.
    void remove_message(std::map<std::string, Message>::iterator it);

    // Delivery status notifications (mta/qmgr/bounce.hpp). A bounce: its queue id saved with the
    // failed recipients, committed under that id unless queue/<id> exists, then `bounced` saved.
    void send_bounces(const std::string& id, Message& m, int64_t now);
    bool commit_bounce(const std::string& id, Message& m, const std::string& bounce_id,
                       const std::vector<size_t>& which, int64_t now);
    void warn_if_due(const std::string& id, Message& m, int64_t now);
    // NOTIFY=SUCCESS (RFC 3461): one "delivered" report for the recipients delivered locally since the
    // last one, one "relayed" report for those ferry-relay sent to a peer without DSN. Kept in memory
    // only: a crash before it is queued loses the report, never the message.
    void send_success(const std::string& id, Message& m);
    // One report of `action` about `which`; nothing when it is empty.
    void send_success_report(const std::string& id, Message& m, const std::vector<size_t>& which, dsn::Action action);
    int64_t warning_due(const Message& m) const;
    Result<std::string> queue_notice(const std::string& id, const Message& m, const std::vector<size_t>& which,
                                     dsn::Action action, const std::string& report_id,
                                     const std::function<Result<void>(const std::string&)>& before_commit);

    event_base* base_;
    const Config& config_;
    Queue& queue_;
    AccountStore& accounts_;
    const Clock& clock_;
    std::vector<std::chrono::seconds> retry_schedule_;
    int64_t max_retry_delay_;   // the longest wait of the schedule, seconds
    size_t max_deliveries_;
    std::chrono::milliseconds gather_;  // qmgr_gather_delay_ms: how long a notified message waits for others while nothing is in flight
    size_t max_rcpts_per_transaction_;  // qmgr_lmtp_max_recipients
    double lmtp_timeout_;
    double relay_timeout_;  // qmgr_relay_timeout: the wait for ferry-relay's replies
    std::string helo_;
    std::string mda_socket_;
    int64_t lifetime_;      // maximal_queue_lifetime, seconds
    int64_t warn_after_;    // delay_warning_time, seconds; 0 = no warnings

    std::map<std::string, Message> messages_;  // by queue id: ids are time-ordered, so oldest first
    std::map<LmtpClient*, Transaction> active_;
    // Connections to ferry-mda whose transaction ended cleanly, waiting (kLmtpIdleSeconds at most)
    // for the next local delivery; at most qmgr_max_deliveries of them.
    std::vector<std::unique_ptr<LmtpClient>> idle_lmtp_;
    static constexpr double kLmtpIdleSeconds = 10;
    // What run() looks at, so that its work per event does not grow with the queue: messages that may
    // have work now; messages waiting for a time; messages waiting for a destination (dead, at its
    // concurrency limit or rate delay), by destination; destinations closed until a time. Entries of
    // messages gone since are skipped when met.
    std::set<std::string> runnable_;
    std::set<std::string> fresh_;  // the same, looked at first: just notified, or a transaction of theirs ended
    std::set<std::pair<int64_t, std::string>> timed_;
    std::map<std::string, std::set<std::string>> parked_;
    std::set<std::pair<int64_t, std::string>> dest_timed_;
    WorkerPool* pool_ = nullptr;
    // Files a scan found, to read against their checksum on the worker before they are loaded; one
    // chunk at a time is there (checking_), so local submissions on the same worker wait little.
    std::set<std::string> verifying_;
    std::set<std::string> checking_;  // the chunk on the worker now (empty: none)
    Destinations dests_;  // qmgr_destination_concurrency, qmgr_destination_rate_delay, back-off
    EventPtr run_ev_, timer_ev_, more_ev_, scan_ev_, gather_ev_;
    bool run_pending_ = false;
    size_t handing_off_ = 0;  // hand-offs waiting for their state save: they count as deliveries
    std::unique_ptr<CommitStage> stage_;  // last: destroyed first, its completions refer to the above
};

}  // namespace ferry::qmgr
