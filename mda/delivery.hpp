// One recipient's delivery: account lookup, the quota check, and the durable Maildir write.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/auth/accounts.hpp"
#include "common/mail/attachment_policy.hpp"
#include "common/program/config.hpp"
#include "common/base/result.hpp"
#include "common/store/maildir.hpp"

namespace ferry::mda {

class AutoReply;
class SieveDelivery;

class Deliverer {
public:
    Deliverer(const Config& config, AccountStore& accounts);
    ~Deliverer();

    // What the account's Sieve scripts decide (ferry-mda(8), SIEVE), and the sender of the mail
    // they send; both used from worker threads.
    SieveDelivery& sieve() { return *sieve_; }
    AutoReply& auto_reply() { return *auto_reply_; }
    // attachment_policy, its map and rules (ferry-mda(8), ATTACHMENTS): an error when the map
    // cannot be read (ferry-mda then does not start).
    const Result<mail::AttachmentSettings>& attachments() const { return attachments_; }

    // The account an RCPT TO or -d address names, after normalisation: "user+tag@d" names "user@d"
    // unless it is an account itself (recipient_account, recipient_delimiter).
    // Errors: 550 5.1.1 no such account, 451 4.3.0 the account database failed.
    Result<Account> find_account(std::string_view address);

    // The account's Maildir, created when missing, with stale tmp/ files cleaned now and then.
    // Errors: 451 4.3.0 (the detail names the path and errno).
    Result<std::string> prepare(const Account& account);

    // Writes one copy of `message` (LF line ends) into `maildir` with Return-Path and Delivered-To
    // prepended, and a final LF when its last line has none: tmp/, fsync, link into new/, fsync new/.
    // Returns the file name once all that is on disk. Errors: 451 4.3.0 disk errors; 552 5.2.2
    // (or 452 4.2.2) over quota; a null-sender message (a DSN) up to mda_quota_dsn_allowance is
    // stored over quota, a larger one gets 452 4.2.2 (never 552: the notice would be lost).
    Result<std::string> write(const std::string& qid, const Account& account, const std::string& maildir,
                              std::string_view sender, std::string_view message);

    // The same for a message that arrives in pieces: start() creates the tmp/ file with the trace
    // headers (they come first), the caller appends the message as it comes, and finish() adds the
    // final LF if needed, checks the quota against the whole size, then fsyncs, links into new/ and
    // fsyncs new/. An unfinished copy removes its tmp/ file when destroyed.
    //
    // start() and finish() touch only the copy and the disk, so they may run on a worker thread.
    class Copy;
    // The message bytes of a copy (its trace headers left out), still readable after that copy was
    // committed or dropped: the other recipients' copies are made from it.
    struct Source {
        Fd fd;
        uint64_t start = 0;
        uint64_t end = 0;
    };
    class Copy {
    public:
        Result<void> append(std::string_view data);
        // Appends the message of `from`, its trace headers left out, from `skip` octets into it
        // (a copy whose header section was rewritten appends the body only).
        Result<void> append_message_of(const Source& from, uint64_t skip = 0);
        // The message written so far, as a Source.
        Result<Source> source() const;
        uint64_t size() const { return file_.size(); }
        // The Maildir name's unique id, known from the start (a delivery record holds it).
        const std::string& base() const { return file_.base(); }
        // Maildir info letters ("FS") it is stored with, set before seal(): it then goes to cur/.
        void set_flags(std::string letters) { file_.set_flags(std::move(letters)); }
        // Stored in another folder of the same account (maildir::Delivery::retarget).
        void retarget(const std::string& folder_maildir) { file_.retarget(folder_maildir); }
        // The name in new/ (with S= and W=), once sealed.
        const std::string& name() const { return file_.name(); }

    private:
        friend class Deliverer;
        Copy(maildir::Delivery file, bool null_sender) : file_(std::move(file)), null_sender_(null_sender) {}
        maildir::Delivery file_;
        bool null_sender_ = false;    // a delivery status notification: see check_quota
        uint64_t message_start_ = 0;  // bytes of the trace headers before the message
        char last_ = '\n';            // the last byte of the message, '\n' while it is empty
    };
    // `base` names the copy (maildir::unique_base, chosen earlier); empty picks a fresh one.
    Result<Copy> start(const Account& account, const std::string& maildir, std::string_view sender,
                       const std::string& base = {});
    // `note` (when given) gets what the log should say about an unusual commit (maildir::Delivery::commit).
    Result<std::string> finish(const std::string& qid, const Account& account, const std::string& maildir, Copy& copy,
                               std::string* note = nullptr);

    // finish() in the steps of a commit stage (the LMTP path), whose batch shares one fsync of new/
    // among the copies of a folder: seal() adds the final LF, checks the quota and fsyncs the copy
    // (beside other copies' fsyncs, on a worker); link() puts it into new/ and names that directory;
    // settle() takes the outcome of the directory's fsync and gives the name. The caller then gives
    // the name its UID (store::append_delivered, several names of one folder at once).
    Result<void> seal(const std::string& qid, const Account& account, const std::string& maildir, Copy& copy);
    static Result<std::string> link(Copy& copy);
    static Result<std::string> settle(Copy& copy, const Result<void>& dir_synced, std::string* note);

    // A fresh Maildir base name for a copy to start later (maildir::unique_base with this host).
    std::string unique_base() const { return maildir::unique_base(host_); }

    // Removes stale tmp/ files in every Maildir under mail_dir (at start); returns how many.
    size_t cleanup_all_tmp();

    // What a Maildir holds in new/ and cur/: the S= size of each name (the file's size when a name
    // has none) and the number of messages. No file is opened.
    struct Usage {
        uint64_t bytes = 0;
        uint64_t messages = 0;
    };
    static Result<Usage> usage(const std::string& maildir);

    // The quota rule alone: nullopt when a message of `size` bytes fits; else the refusal,
    // 552 5.2.2 (or 452 4.2.2 when `temporary`). 0 in a quota means unlimited.
    static std::optional<Error> over_quota(const Account& account, const Usage& used, uint64_t size, bool temporary);

private:
    Result<void> check_quota(const Account& account, const std::string& maildir, uint64_t size, bool null_sender);
    void cleanup_tmp_if_due(const std::string& maildir);

    const Config& config_;
    AccountStore& accounts_;
    std::string mail_dir_;
    std::string host_;
    std::chrono::seconds tmp_max_age_;                  // maildir_tmp_max_age
    uint64_t dsn_allowance_;                            // mda_quota_dsn_allowance
    Result<mail::AttachmentSettings> attachments_;
    std::unordered_map<std::string, time_t> cleaned_;  // Maildir -> last tmp/ cleanup
    std::unique_ptr<SieveDelivery> sieve_;
    std::unique_ptr<AutoReply> auto_reply_;
};

}  // namespace ferry::mda
