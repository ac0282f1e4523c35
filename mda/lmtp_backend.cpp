// ferry-mda behind the LMTP server: recipients are accounts, each gets its Maildir copy written as the message arrives.
#include "mda/lmtp_backend.hpp"

#include "common/base/fs.hpp"
#include "common/base/log.hpp"
#include "common/program/daemon.hpp"
#include "common/spool/spool.hpp"
#include "common/store/index.hpp"
#include "common/store/maildir.hpp"
#include "mda/trace_headers.hpp"

namespace ferry::mda {

namespace {
// ferry's Received: header is the first line of the message; a header section this long without one has none.
constexpr size_t kHeadKept = 65536;

Error record_error(const Error& e) {
    return make_error(451, "4.3.0", "Temporary failure with the delivery record", e.what());
}
}  // namespace

void FolderUids::linked(const std::string& maildir, std::string name) {
    std::lock_guard lock(mu_);
    names_[maildir].push_back(std::move(name));
    ++unsettled_;
}

size_t FolderUids::pending(const std::string& maildir) {
    std::lock_guard lock(mu_);
    auto it = names_.find(maildir);
    return it == names_.end() ? 0 : it->second.size();
}

void FolderUids::settled(const std::string& maildir, const Result<void>& dir, const std::optional<std::string>& name,
                         const std::string& id) {
    std::lock_guard lock(mu_);
    std::vector<std::string> names;
    if (auto it = names_.find(maildir); it != names_.end()) {
        names = std::move(it->second);  // the folder's first settle: its names in the batch's order
        names_.erase(it);
    }
    if (!dir) names.clear();  // unlinked again, all of them, but for one a reader took meanwhile
    if (!dir && name) names.push_back(*name);
    if (names.size() > 1)
        log::debug("%s: %zu copies committed together in %s/new", id.c_str(), names.size(), maildir.c_str());
    if (!names.empty())
        if (auto uids = batch_.add(maildir, names); !uids)
            log::warnx("%s: %s: no UID at delivery: %s", id.c_str(), maildir.c_str(), uids.error().what().c_str());
    if (--unsettled_ == 0)
        for (const auto& [path, e] : batch_.sync())
            log::warnx("%s: no UID at delivery: %s", id.c_str(), e.what().c_str());
}

// What a delivery after the final dot needs, moved off the backend: the worker running a step and
// the loop share it, one at a time (a step starts only after the previous one's completion ran);
// a commit step touches only its own target and copy.
struct MaildirBackend::Transaction {
    Deliverer& deliverer;
    const Config& config;
    DeliveryRecord* record;
    std::string session_id, qid, sender;
    std::optional<int64_t> segment;  // the delivery record's segment; none: no record is kept
    std::vector<Target> targets;
    std::vector<std::optional<Deliverer::Copy>> copies;  // per target, while it is made and committed
    size_t live_index = 0;                                // copies[live_index] is the live copy, if any
    std::optional<Deliverer::Source> source;  // the message, for the copies of the other targets
    bool prepared = false;                    // the first step ran
    size_t next = 0;                          // the next target to finish

    void resolve_failed(Target& t, Error e) {
        t.failed = std::move(e);
        t.resolved = true;
        t.claim = {};
        log::warnx("%s: %s: to=<%s> not delivered: %s", session_id.c_str(), qid.c_str(), t.address.c_str(),
                   t.failed->what().c_str());
    }
    void resolve_already(Target& t, const std::string& base) {
        t.reply = "<" + t.address + "> already delivered as " + base;
        t.resolved = true;
        t.claim = {};
        log::info("%s: %s: to=<%s> already delivered to maildir as %s", session_id.c_str(), qid.c_str(),
                  t.address.c_str(), base.c_str());
    }

    Deliverer::Copy* live() { return live_index < copies.size() && copies[live_index] ? &*copies[live_index] : nullptr; }

    // First step: what the delivery record knows, then one durable intent record per copy to make.
    void prepare() {
        for (auto& t : targets)
            if (!t.resolved && segment) check_record(t);
        bool others = false;
        for (size_t k = 0; k < targets.size(); ++k) {
            Target& t = targets[k];
            if (t.resolved) continue;
            t.base = k == live_index && live() ? live()->base() : deliverer.unique_base();
            others = others || k != live_index;
        }
        if (others && live()) {
            if (auto s = live()->source(); s) source.emplace(std::move(s.value()));
            else fail_pending(s.error());
        }
        if (segment) write_intents();
    }

    // A pair the record holds is answered from it, and from the Maildir when only its intent is there.
    void check_record(Target& t) {
        t.claim = record->claim(qid, t.address);
        if (!t.claim.held())
            return resolve_failed(t, make_error(451, "4.3.0", "Delivery in progress in another session, try again later"));
        auto found = record->lookup(*segment, qid, t.address);
        if (!found) return resolve_failed(t, record_error(found.error()));
        if (!*found) return;
        if ((*found)->state == DeliveryRecord::State::done) return resolve_already(t, (*found)->base);
        auto name = maildir::find_base(t.maildir, (*found)->base);
        if (!name) return resolve_failed(t, record_error(name.error()));
        if (!*name) return;  // the crash came before the link: delivered again under a new name
        // Linked before a crash, perhaps without the fsync of new/: made durable now.
        std::string sub = (*name)->substr(0, 3);
        if (auto r = fsync_dir(t.maildir + "/" + sub); !r) return resolve_failed(t, record_error(r.error()));
        if (sub != "new")
            if (auto r = fsync_dir(t.maildir + "/new"); !r) return resolve_failed(t, record_error(r.error()));
        if (auto r = record->done(*segment, qid, t.address, (*found)->base); !r)
            log::warnx("%s: %s: %s", session_id.c_str(), qid.c_str(), r.error().what().c_str());
        resolve_already(t, (*found)->base);
    }

    void write_intents() {
        std::vector<DeliveryRecord::Intent> intents;
        for (auto& t : targets)
            if (!t.resolved) intents.push_back({t.address, t.base});
        if (intents.empty()) return;
        if (auto r = record->intend(*segment, qid, intents); !r) return fail_pending(record_error(r.error()));
        test_pause_point(config, "mda-after-intent", qid);
    }

    void fail_pending(const Error& e) {
        for (auto& t : targets)
            if (!t.resolved) resolve_failed(t, e);
    }

    // Commit stage, sync: the target's copy made (from the live one unless it is that one), its
    // final LF added, the quota checked and the file fsync'd. A failed copy goes at once.
    Result<void> seal(size_t k) {
        Target& t = targets[k];
        auto& copy = copies[k];
        if (!copy) {
            if (!source) return make_error(451, "4.3.0", "Temporary failure writing the mailbox");
            auto started = deliverer.start(t.account, t.maildir, sender, t.base);
            if (!started) return started.error();
            copy.emplace(std::move(started.value()));
            if (auto r = copy->append_message_of(*source); !r) {
                copy.reset();
                return r;
            }
        }
        auto sealed = deliverer.seal(qid, t.account, t.maildir, *copy);
        if (!sealed) copy.reset();
        return sealed;
    }

    // Commit stage, publish: linked into new/, its name noted for the folder's UIDs.
    Result<std::string> link(size_t k, FolderUids& uids) {
        auto dir = Deliverer::link(*copies[k]);
        if (!dir) {
            copies[k].reset();
            return dir.error();
        }
        uids.linked(targets[k].maildir, copies[k]->name());
        return dir;
    }

    // Commit stage, settle: after the fsync of new/, the UIDs of the folder's batch and the done record.
    Result<void> settle(size_t k, const Result<void>& dir, FolderUids& uids) {
        Target& t = targets[k];
        std::string note;
        auto name = Deliverer::settle(*copies[k], dir, &note);
        copies[k].reset();
        if (dir && uids.pending(t.maildir) > 1) test_pause_point(config, "mda-batch-linked", qid);
        uids.settled(t.maildir, dir, name ? std::optional<std::string>(*name) : std::nullopt, session_id + ": " + qid);
        if (!name) return name.error();
        if (!note.empty()) log::warnx("%s: %s: to=<%s> %s", session_id.c_str(), qid.c_str(), t.address.c_str(), note.c_str());
        log::info("%s: %s: to=<%s> delivered to maildir as %s", session_id.c_str(), qid.c_str(), t.address.c_str(),
                  name->c_str());
        test_pause_point(config, "mda-after-link", qid);
        if (segment)
            if (auto r = record->done(*segment, qid, t.address, t.base); !r)
                log::warnx("%s: %s: %s", session_id.c_str(), qid.c_str(), r.error().what().c_str());
        test_pause_point(config, "mda-before-reply", qid);
        return {};
    }

    void resolve_delivered(Target& t) {
        t.reply = "<" + t.address + "> delivered as " + qid;
        t.resolved = true;
        t.claim = {};
    }
};

MaildirBackend::MaildirBackend(Deliverer& deliverer, const Config& config, WorkerPool& pool, CommitStage& stage,
                               FolderUids& uids, DeliveryRecord* record, std::string session_id)
    : deliverer_(deliverer),
      config_(config),
      pool_(pool),
      stage_(stage),
      uids_(uids),
      record_(record),
      session_id_(std::move(session_id)) {}

MaildirBackend::~MaildirBackend() = default;

void MaildirBackend::begin(std::string_view sender) { sender_ = sender; }

std::optional<Error> MaildirBackend::recipient(std::string_view address) {
    auto account = deliverer_.find_account(address);
    if (!account) {
        log::info("%s: to=<%s> refused: %s", session_id_.c_str(),
                  std::string(address).c_str(), account.error().what().c_str());
        return account.error();
    }
    size_t k = 0;
    while (k < targets_.size() && targets_[k].address != account->address) ++k;
    if (k == targets_.size()) {
        Target t;
        t.address = account->address;
        t.account = std::move(account.value());
        targets_.push_back(std::move(t));
    }
    recipients_.push_back(k);
    return std::nullopt;
}

void MaildirBackend::data_start() {
    for (auto& t : targets_) {
        auto maildir = deliverer_.prepare(t.account);
        if (maildir) t.maildir = *maildir;
        else t.failed = maildir.error();
    }
    choose_live_copy();
}

// The first target whose copy can be started takes the message as it arrives (its trace headers first).
void MaildirBackend::choose_live_copy() {
    for (live_ = 0; live_ < targets_.size(); ++live_) {
        Target& t = targets_[live_];
        if (t.failed) continue;
        auto copy = deliverer_.start(t.account, t.maildir, sender_);
        if (copy) {
            live_copy_.emplace(std::move(copy.value()));
            return;
        }
        t.failed = copy.error();
    }
}

void MaildirBackend::data(std::string_view chunk) {
    size_ += chunk.size();
    if (head_.size() < kHeadKept) head_.append(chunk.substr(0, kHeadKept - head_.size()));
    if (!live_copy_) return;
    if (auto r = live_copy_->append(chunk); !r) {
        // The message is kept nowhere else: no target can be delivered now, each is tried again.
        for (auto& t : targets_)
            if (!t.failed) t.failed = r.error();
        live_copy_.reset();  // removes its tmp/ file
    }
}

void MaildirBackend::end_of_data(const std::optional<Error>& refused, ReplyFn reply) {
    std::string received_qid = queue_id_from_received(head_);
    // No ferry Received: header: a local id still joins the lines, but no record is kept.
    std::string qid = received_qid.empty() ? spool::new_queue_id() : received_qid;
    if (refused) {
        log::info("%s: %s: from=<%s> rejected: %s", session_id_.c_str(), qid.c_str(), sender_.c_str(), refused->what().c_str());
        live_copy_.reset();
        for (size_t i = recipients_.size(); i > 0; --i) reply(*refused);  // the last one may reset this backend
        return;
    }
    log::info("%s: %s: from=<%s> size=%llu nrcpt=%zu", session_id_.c_str(), qid.c_str(), sender_.c_str(), static_cast<unsigned long long>(size_),
              recipients_.size());
    txn_ = std::make_shared<Transaction>(Transaction{deliverer_, config_, record_, session_id_, qid, sender_, {}, {}, {}, 0, {}, false, 0});
    if (record_ && !received_qid.empty()) txn_->segment = record_->segment_of(received_qid);
    for (auto& t : targets_) {
        if (!t.failed && !live_copy_) t.failed = make_error(451, "4.3.0", "Temporary failure writing the mailbox");
        if (t.failed) txn_->resolve_failed(t, *t.failed);
    }
    txn_->targets = std::move(targets_);
    targets_.clear();
    txn_->copies.resize(txn_->targets.size());
    if (live_copy_) txn_->copies[live_] = std::move(live_copy_);
    live_copy_.reset();
    txn_->live_index = live_;
    reply_ = std::move(reply);
    replied_ = 0;
    run_next(txn_);
}

// Queues the transaction's next step: the first on the worker pool, each recipient's commit in the
// stage; its completion sends what replies it made ready and queues the step after. Once the
// session is gone the rest is dropped: the client tries again, and the record tells that attempt
// what this one finished (a commit already in the stage finishes all the same).
void MaildirBackend::run_next(const std::shared_ptr<Transaction>& txn) {
    if (!txn->prepared) {
        std::weak_ptr<bool> alive = alive_;
        pool_.submit([txn] { txn->prepare(); }, [this, alive, txn] {
            txn->prepared = true;
            if (alive.expired() || txn_ != txn) return;
            send_ready_replies();
            if (txn_ == txn) run_next(txn);
        });
        return;
    }
    size_t k = txn->next;
    while (k < txn->targets.size() && txn->targets[k].resolved) ++k;
    if (k == txn->targets.size()) return;
    txn->next = k + 1;
    stage_.submit(commit_item(txn, k));
}

CommitStage::Item MaildirBackend::commit_item(const std::shared_ptr<Transaction>& txn, size_t k) {
    CommitStage::Item item;
    FolderUids* uids = &uids_;
    item.sync = [txn, k] { return txn->seal(k); };
    item.publish = [txn, k, uids] { return txn->link(k, *uids); };
    item.settle = [txn, k, uids](const Result<void>& dir) { return txn->settle(k, dir, *uids); };
    std::weak_ptr<bool> alive = alive_;
    item.done = [this, alive, txn, k](Result<void> r) {
        Target& t = txn->targets[k];
        if (r) txn->resolve_delivered(t);
        else txn->resolve_failed(t, r.error());
        if (alive.expired() || txn_ != txn) return;
        send_ready_replies();
        if (txn_ == txn) run_next(txn);
    };
    return item;
}

// The replies now known, in RCPT order: a recipient waits for all before it.
void MaildirBackend::send_ready_replies() {
    std::shared_ptr<Transaction> txn = txn_;  // the last reply resets this backend
    while (txn_ == txn && replied_ < recipients_.size()) {
        const Target& t = txn->targets[recipients_[replied_]];
        if (!t.resolved) return;
        ++replied_;
        ReplyFn reply = reply_;  // the last reply resets reply_ while it runs
        if (t.failed) reply(*t.failed);
        else reply(t.reply);
    }
}

void MaildirBackend::reset() {
    sender_.clear();
    recipients_.clear();
    live_copy_.reset();  // an unfinished copy removes its tmp/ file
    targets_.clear();
    head_.clear();
    head_.shrink_to_fit();
    size_ = 0;
    txn_.reset();  // a step still running keeps what it touches
    reply_ = nullptr;
    replied_ = 0;
}

}  // namespace ferry::mda
