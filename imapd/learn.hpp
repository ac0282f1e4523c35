// The Junk learning hook (ferry-imapd(8)): a message copied into Junk goes to a spam command, one out of it to a ham command.
#pragma once

#include <event2/event.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/command.hpp"
#include "common/base/fd.hpp"
#include "common/event/worker_pool.hpp"

namespace ferry {
class Config;
}

namespace ferry::imap {

enum class Verdict { spam, ham };
const char* verdict_name(Verdict v);

// What a COPY or MOVE from folder `from` to folder `to` teaches, given the account's folders with
// \Junk and \Trash (empty when it has none): into Junk is spam, out of Junk is ham, except into
// Trash (deleting a message says nothing of it).
std::optional<Verdict> learn_verdict(std::string_view from, std::string_view to, std::string_view junk,
                                     std::string_view trash);

struct LearnSettings {
    std::string spam_command;  // imapd_spam_learn_command; empty: off
    std::string ham_command;   // imapd_ham_learn_command; empty: off
    double timeout = 30;       // imapd_learn_timeout
    int processes = 2;         // imapd_learn_processes: commands running at once
};
LearnSettings learn_settings(const Config& config);

// The commands run on a pool of their own, one per worker, after the client's reply: learning is
// slow (sa-learn takes a second) and must never hold up a session or change a mailbox.
class Learner {
public:
    // Messages that wait for a worker, each holding its file open; past this, learning is skipped.
    static constexpr size_t kMaxPending = 256;

    Learner(event_base* base, LearnSettings settings);
    // Kills the commands running, drops those waiting.
    ~Learner();
    Learner(const Learner&) = delete;
    Learner& operator=(const Learner&) = delete;

    bool enabled() const { return pool_ != nullptr; }
    bool enabled(Verdict v) const { return !command(v).empty(); }
    // Queues the command of `v` over `message` (a file open for reading); its outcome is logged as
    // "<session>: learn spam user=... folder=... uid=N exit=0". False when kMaxPending wait already
    // (the caller says so, once for a whole COPY).
    bool submit(Verdict v, Fd message, const std::string& session, const std::string& user, const std::string& folder,
                uint32_t uid);

private:
    const std::string& command(Verdict v) const { return v == Verdict::spam ? settings_.spam_command : settings_.ham_command; }

    LearnSettings settings_;
    std::string home_;        // of the user the daemon runs as: sa-learn keeps its database there
    Fd stop_;                 // eventfd: readable once the learner is going away
    size_t pending_ = 0;      // submitted, not completed
    std::unique_ptr<WorkerPool> pool_;  // none while both commands are off
};

}  // namespace ferry::imap
