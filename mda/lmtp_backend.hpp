// ferry-mda behind the LMTP server: recipients are accounts, each gets its Maildir copy written as the message arrives.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/auth/accounts.hpp"
#include "common/event/commit_stage.hpp"
#include "common/event/worker_pool.hpp"
#include "common/program/config.hpp"
#include "common/store/index.hpp"
#include "common/smtp/lmtp_server.hpp"
#include "mda/delivery.hpp"
#include "mda/delivery_record.hpp"

namespace ferry::mda {

// The UIDs of one commit batch's copies: the names it linked, per folder, get their A records in
// one append to the folder's index (store::append_delivered, not synced: the first reader syncs),
// by the folder's first copy to settle. The stage publishes every item of a batch before it
// settles any, settles each published item once, and runs one batch at a time. Used from the
// stage's batch thread; the mutex only makes that plain.
class FolderUids {
public:
    void linked(const std::string& maildir, std::string name);
    // After the fsync of `maildir`/new/: the folder's first copy appends the records of them all
    // (`name` alone when a reader took it before that fsync failed). What fails is logged under
    // `id` (the delivery stands: the next sync of the folder numbers it).
    void settled(const std::string& maildir, const Result<void>& dir, const std::optional<std::string>& name,
                 const std::string& id);
    // The names of `maildir` in this batch that have not got their A records yet.
    size_t pending(const std::string& maildir);

private:
    std::mutex mu_;
    std::unordered_map<std::string, std::vector<std::string>> names_;  // guarded by mu_
};

// The message is written while it arrives (on the loop, into one "live" copy). After the final dot
// the rest runs off the loop: first, on the worker pool, the delivery record is read, the
// administrator's filters run once over the message (ferry-mda(8), FILTERS), each
// recipient's Sieve scripts decide its folders (ferry-mda(8), SIEVE) and the intent records are made
// durable (one sync); then each recipient's copies (one per folder) go through the commit stage in
// RCPT order, one at a time (copy, quota and fsync beside other sessions' fsyncs; link into new/;
// one fsync of new/ per folder for the whole batch; UIDs; done record) and is answered as soon as
// it is durable. The stage is shared by every session, so concurrent transactions commit together;
// a slow mailbox holds up its own session (and the batch it is in) only.
class MaildirBackend final : public smtp::LmtpBackend {
public:
    // `record` may be null: then no delivery record is kept (at-least-once).
    MaildirBackend(Deliverer& deliverer, const Config& config, WorkerPool& pool, CommitStage& stage,
                   FolderUids& uids, DeliveryRecord* record, std::string session_id);
    ~MaildirBackend() override;

    void begin(std::string_view sender) override;
    std::optional<Error> recipient(std::string_view address) override;
    void data_start() override;
    void data(std::string_view chunk) override;
    void end_of_data(const std::optional<Error>& refused, ReplyFn reply) override;
    void reset() override;

    // One distinct account of the transaction: a recipient given twice gets one copy and the same answer twice.
    struct Target {
        std::string address;  // as the account database spells it
        Account account;
        std::string maildir;
        std::optional<Error> failed;  // why it will not be delivered
        bool resolved = false;        // the reply is known: failed, or durable in new/ (now or before)
        std::string reply;            // the text of the 250 once resolved without `failed`
        std::string base;             // the Maildir base name of its copies (one per folder), once chosen
        DeliveryRecord::Claim claim;  // while this transaction delivers the pair
        std::string given;            // the RCPT address as written (Sieve's envelope "to", +detail kept)
        bool retried = false;         // the record holds an intent: its copies keep that base, some may exist
        std::optional<std::string> header;  // editheader: the header section its copies get instead
        uint64_t replaced = 0;              // octets of the message's own header section it replaces
        bool stripped = false;              // its copies are of the message with refused files replaced
    };
    struct Transaction;

private:
    void choose_live_copy();
    void run_next(const std::shared_ptr<Transaction>& txn);
    CommitStage::Item commit_item(const std::shared_ptr<Transaction>& txn, size_t k);
    void send_ready_replies();

    Deliverer& deliverer_;
    const Config& config_;
    WorkerPool& pool_;
    CommitStage& stage_;
    FolderUids& uids_;
    DeliveryRecord* record_;
    std::string session_id_;  // starts each log line, before the queue id
    std::string sender_;
    std::vector<size_t> recipients_;  // accepted RCPTs, in order: positions in targets_
    std::vector<Target> targets_;
    // The copy written while the message arrives, for targets_[live_]. The other targets' copies are
    // made from it after the dot, one at a time: a session holds two files open at most, however
    // many recipients it has.
    std::optional<Deliverer::Copy> live_copy_;
    size_t live_ = 0;
    // The header section (at most kHeadKept octets): the queue id in its Received: field, the
    // virus mark and the spam headers are read from it.
    std::string head_;
    bool head_done_ = false;  // head_ holds the whole header section
    uint64_t size_ = 0;  // message bytes so far (LF line ends)
    // After the dot: the work in flight (shared with the worker running its step) and the replies.
    std::shared_ptr<Transaction> txn_;
    ReplyFn reply_;
    size_t replied_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for completions after destruction
};

}  // namespace ferry::mda
