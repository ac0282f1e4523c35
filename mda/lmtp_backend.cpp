// ferry-mda behind the LMTP server: recipients are accounts, each gets its Maildir copy written as the message arrives.
#include "mda/lmtp_backend.hpp"

#include "common/base/log.hpp"
#include "common/program/daemon.hpp"
#include "common/spool/spool.hpp"
#include "mda/trace_headers.hpp"

namespace ferry::mda {

namespace {
// ferry's Received: header is the first line of the message; a header section this long without one has none.
constexpr size_t kHeadKept = 65536;
}  // namespace

MaildirBackend::MaildirBackend(Deliverer& deliverer, const Config& config, std::string session_id)
    : deliverer_(deliverer), config_(config), session_id_(std::move(session_id)) {}

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
        std::string addr = account->address;
        targets_.push_back(Target{std::move(addr), std::move(account.value()), {}, {}, false});
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

void MaildirBackend::end_of_data(const std::optional<Error>& refused, Done done) {
    std::string qid = queue_id_from_received(head_);
    if (qid.empty()) qid = spool::new_queue_id();  // no ferry Received: header: a local id still joins the lines
    if (refused) {
        log::info("%s: %s: from=<%s> rejected: %s", session_id_.c_str(), qid.c_str(), sender_.c_str(), refused->what().c_str());
        live_copy_.reset();
        done(Replies(recipients_.size(), *refused));
        return;
    }
    log::info("%s: %s: from=<%s> size=%llu nrcpt=%zu", session_id_.c_str(), qid.c_str(), sender_.c_str(), static_cast<unsigned long long>(size_),
              recipients_.size());
    finish_all(qid);
    test_pause_point(config_, "mda-before-reply", qid);
    Replies replies;
    for (size_t k : recipients_) {
        const Target& t = targets_[k];
        if (t.delivered) replies.push_back("<" + t.address + "> delivered as " + qid);
        else replies.push_back(*t.failed);
    }
    done(std::move(replies));
}

// Each copy is made durable (fsync, link into new/, fsync new/) before any recipient is answered;
// the live copy last, as the others are read from it.
void MaildirBackend::finish_all(const std::string& qid) {
    for (size_t k = 0; k < targets_.size(); ++k) {
        Target& t = targets_[k];
        if (t.failed || k == live_ || !live_copy_) continue;
        auto copy = deliverer_.start(t.account, t.maildir, sender_);
        if (!copy) {
            t.failed = copy.error();
            continue;
        }
        if (auto r = copy->append_message_of(*live_copy_); !r) {
            t.failed = r.error();
            continue;
        }
        finish_one(qid, t, *copy);
    }
    if (live_copy_) finish_one(qid, targets_[live_], *live_copy_);
    live_copy_.reset();
    for (auto& t : targets_) {
        if (t.delivered) continue;
        if (!t.failed) t.failed = make_error(451, "4.3.0", "Temporary failure writing the mailbox");
        log::warnx("%s: %s: to=<%s> not delivered: %s", session_id_.c_str(), qid.c_str(), t.address.c_str(), t.failed->what().c_str());
    }
}

void MaildirBackend::finish_one(const std::string& qid, Target& t, Deliverer::Copy& copy) {
    auto name = deliverer_.finish(qid, t.account, t.maildir, copy);
    if (!name) {
        t.failed = name.error();
        return;
    }
    t.delivered = true;
    log::info("%s: %s: to=<%s> delivered to maildir as %s", session_id_.c_str(), qid.c_str(), t.address.c_str(), name->c_str());
}

void MaildirBackend::reset() {
    sender_.clear();
    recipients_.clear();
    live_copy_.reset();  // an unfinished copy removes its tmp/ file
    targets_.clear();
    head_.clear();
    head_.shrink_to_fit();
    size_ = 0;
}

}  // namespace ferry::mda
