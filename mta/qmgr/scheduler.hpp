// The scheduler: which recipients are due, alias expansion, routing, LMTP hand-off, its results, and the reports to the sender.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/auth/accounts.hpp"
#include "common/program/config.hpp"
#include "common/mail/dsn.hpp"
#include "common/event/event.hpp"
#include "mta/qmgr/lmtp_client.hpp"
#include "mta/qmgr/queue.hpp"
#include "mta/qmgr/state.hpp"

namespace ferry::qmgr {

class Scheduler final : public LmtpClient::Owner {
public:
    Scheduler(event_base* base, const Config& config, Queue& queue, AccountStore& accounts);
    ~Scheduler() override;

    // Loads every queue file not yet known, forgets those that are gone; then runs. Also every
    // qmgr_scan_interval once start_timers() was called.
    void scan();
    // smtpd's "NEW <id>": load that file and run.
    void notify(const std::string& id);
    void start_timers();

    size_t queued() const { return messages_.size(); }

    void lmtp_result(LmtpClient& client, std::vector<LmtpReply> replies) override;
    void lmtp_closed(LmtpClient& client) override;

private:
    struct Message {
        spool::Envelope envelope;
        MessageState state;
        bool busy = false;      // a transaction for it is in flight
        int64_t warn_retry = 0; // after a delay warning could not be queued: not before this
    };
    struct Transaction {
        std::string id;
        std::vector<size_t> rcpts;  // positions in Message::state.rcpts, in RCPT order
        std::unique_ptr<LmtpClient> client;
    };
    enum class Route { local, relay, unknown };

    void kick();
    void run();
    void arm_timer(int64_t when, int64_t now);
    bool add(const std::string& id);
    bool due(const Message& m, int64_t now) const;
    int64_t next_due(const Message& m) const;
    bool complete(const Message& m) const;

    void attempt(const std::string& id, Message& m, int64_t now);
    void expand(const std::string& id, Message& m, int64_t now);
    Route route(const std::string& to, std::string& why);
    void hand_off(const std::string& id, Message& m, std::vector<size_t> batch, int64_t now);

    void delivered(const std::string& id, RcptState& r, const std::string& reply);
    void bounced(const std::string& id, const Message& m, RcptState& r, const std::string& relay, const std::string& reply);
    void deferred(const std::string& id, const Message& m, RcptState& r, const std::string& relay,
                  const std::string& reply, int64_t now);
    void expired(const std::string& id, RcptState& r, const std::string& relay, const std::string& reply);
    void finish(const std::string& id);

    // Delivery status notifications (mta/qmgr/bounce.hpp): one bounce per round for the recipients
    // that failed, one delay warning per message; each recorded in the state only once committed.
    void report_failures(const std::string& id, Message& m, int64_t now);
    void warn_if_due(const std::string& id, Message& m, int64_t now);
    int64_t warning_due(const Message& m) const;
    Result<std::string> queue_notice(const std::string& id, const Message& m, const std::vector<size_t>& which,
                                     dsn::Action action, int64_t now);
    bool is_expired(const Message& m, int64_t now) const;

    event_base* base_;
    const Config& config_;
    Queue& queue_;
    AccountStore& accounts_;
    std::vector<std::chrono::seconds> retry_schedule_;
    size_t max_deliveries_;
    size_t max_rcpts_per_transaction_;  // qmgr_lmtp_max_recipients
    double lmtp_timeout_;
    std::string helo_;
    std::string mda_socket_;
    int64_t lifetime_;      // maximal_queue_lifetime, seconds
    int64_t warn_after_;    // delay_warning_time, seconds; 0 = no warnings

    std::map<std::string, Message> messages_;  // by queue id: ids are time-ordered, so oldest first
    std::map<LmtpClient*, Transaction> active_;
    EventPtr run_ev_, timer_ev_, scan_ev_;
    bool run_pending_ = false;
};

}  // namespace ferry::qmgr
