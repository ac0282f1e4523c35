// Sieve at delivery: an account's scripts (site before/after, the user's active one) compiled once, cached, and run on a message.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/base/result.hpp"
#include "common/program/config.hpp"
#include "mda/sieve/interpreter.hpp"
#include "mda/sieve/script.hpp"
#include "mda/sieve_plan.hpp"

namespace ferry::mda {

class AutoReply;

// The keys of ferry-mda(8), SIEVE, read once.
struct SieveSettings {
    std::string before_dir, after_dir;  // sieve_before, sieve_after ("" for none)
    sieve::CompileLimits compile;       // sieve_max_script_size, sieve_max_nesting
    sieve::RunLimits run;               // sieve_max_actions, sieve_max_redirects, sieve_max_steps
    uint64_t max_body = 1024 * 1024;    // sieve_max_body_bytes: what the body test reads
    double junk_score = 5.0;            // spam_junk_score; 0 files nothing as junk
    std::string junk_map;               // the text of spam_junk_score_map, read at start
    int64_t duplicate_period = 12 * 3600;      // sieve_duplicate_period: without :seconds
    int64_t duplicate_max_period = 2 * 86400;  // sieve_duplicate_max_period: :seconds is held below it
    size_t duplicate_max_entries = 10000;      // sieve_duplicate_max_entries
    std::string subaddress = "+";       // recipient_delimiter: Sieve's :user and :detail
};
SieveSettings sieve_settings(const Config& config);

// One delivery as the scripts see it.
struct SieveEnvelope {
    std::string qid;          // for log lines
    std::string sender;       // MAIL FROM, "" for the null sender
    std::string rcpt;         // the recipient as given (RFC 5233: with its +detail)
    std::string account;      // the account's address
    std::string maildir;      // the account's Maildir (its INBOX)
    std::string_view head;    // the start of the message: the junk filter reads its header
};

// What the delivery record knows of the sends (redirects, vacation replies) of one delivery, so that
// an attempt after a crash makes none twice and loses none: asked before each send, told after it.
// `what` names the send: "redirect:<address>" or "vacation:<hash of the handle>".
struct SendLedger {
    // true: sent by an earlier attempt; false: it failed then (the message was kept); nullopt: not tried.
    std::function<Result<std::optional<bool>>(const std::string& what)> outcome;
    std::function<void(const std::string& what, bool sent)> record;
};

// A folder copy with the Maildir it goes to.
struct FolderTarget {
    std::string folder;
    std::string maildir;
    std::string flags;
};

// Thread-safe: worker threads of ferry-mda decide for several deliveries at once.
class SieveDelivery {
public:
    explicit SieveDelivery(const Config& config);
    ~SieveDelivery();

    // Reads the message: its header and up to `max_body` octets of its body (all of it when max_body
    // is the size); the whole size comes separately.
    using Reader = std::function<Result<std::string>(uint64_t max_body)>;

    // The plan for this delivery. No script at all: the implicit keep (INBOX, or Junk per the score),
    // at the cost of a stat. A script that does not compile or fails at run time: the implicit keep,
    // a log line, and (for the user's own script) one notice into INBOX per change of the script.
    DeliveryPlan decide(const SieveEnvelope& e, const Reader& read, uint64_t size);

    // Sends the plan's redirects and vacation replies (blocking, on a worker thread): a redirect
    // without :copy that fails keeps the message in INBOX; every failure is logged. With a ledger,
    // what it records as done before is not sent again (and a failure recorded keeps the message
    // again); an error when the ledger cannot be read (nothing more is sent, the caller defers).
    Result<void> send(const SieveEnvelope& e, const Reader& read, DeliveryPlan& plan, AutoReply& auto_reply,
                      const SendLedger* ledger = nullptr);

    // Remembers the plan's duplicate ids (RFC 7352) in <maildir>/sieve/.duplicate once the delivery
    // succeeded, with this delivery's queue id; a failure is logged.
    void track(const SieveEnvelope& e, const DeliveryPlan& plan);

    // The Maildir of each copy: a missing folder is made (subscribed) for :create and the Junk
    // folder; otherwise its copy goes to INBOX and the log says so (RFC 5490 3.2). Copies that end
    // in one folder are merged.
    std::vector<FolderTarget> folders(const SieveEnvelope& e, const DeliveryPlan& plan);

    // The implicit keep's folder for this message: "Junk" when its X-Spam-Score reaches the
    // account domain's threshold or ferry-smtpd's DMARC verdict says quarantine (unless the
    // threshold is 0: junk filing off), else nothing (INBOX).
    std::optional<std::string> junk_folder(const SieveEnvelope& e) const;

    const SieveSettings& settings() const { return settings_; }

private:
    struct Compiled;
    struct Loaded {
        std::string path;
        std::string name;  // for the notice: the script's name
        std::shared_ptr<const Compiled> compiled;
        bool user = false;
    };
    std::shared_ptr<const Compiled> load(const std::string& path, const struct stat& st);
    std::vector<Loaded> scripts(const SieveEnvelope& e);
    void notify_failure(const SieveEnvelope& e, const Loaded& script, const std::string& why);

    SieveSettings settings_;
    std::string host_;
    std::mutex mu_;
    std::unordered_map<std::string, std::shared_ptr<const Compiled>> cache_;  // guarded by mu_
};

// The message of a copy read for the scripts: the header section and at most `max_body` octets of
// the body, from `fd` between `start` and `end`.
Result<std::string> read_message_start(int fd, uint64_t start, uint64_t end, uint64_t max_body);

}  // namespace ferry::mda
