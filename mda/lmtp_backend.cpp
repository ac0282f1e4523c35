// ferry-mda behind the LMTP server: recipients are accounts, each gets its Maildir copy written as the message arrives.
#include "mda/lmtp_backend.hpp"

#include <unistd.h>

#include <algorithm>

#include "common/base/fs.hpp"
#include "common/base/log.hpp"
#include "common/program/daemon.hpp"
#include "common/spool/spool.hpp"
#include "common/store/index.hpp"
#include "common/store/maildir.hpp"
#include "mda/attachment_strip.hpp"
#include "mda/filters.hpp"
#include "mda/sieve_delivery.hpp"
#include "mda/trace_headers.hpp"
#include "mda/virus_scan.hpp"

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
        if (auto uids = store::append_delivered(maildir, names); !uids)
            log::warnx("%s: %s: no UID at delivery: %s", id.c_str(), maildir.c_str(), uids.error().what().c_str());
}

// What a delivery after the final dot needs, moved off the backend: the worker running a step and
// the loop share it, one at a time (a step starts only after the previous one's completion ran);
// a commit step touches only its own job and copy.
//
// A recipient's Sieve scripts may store the message in several folders: each folder gets one job
// (a copy), all of one recipient under the same Maildir base name, which its one intent record
// names. After a crash the retry finds which folders hold that base already and makes only the
// others, so each folder gets exactly one copy. Copies into other folders than INBOX are written
// afresh from the live copy's Source, as other recipients' copies are: a hard link from INBOX's
// tmp/ would share one file between two folders' flags and header edits, and the copy costs one
// write beside the fsync every folder needs anyway.
struct MaildirBackend::Transaction {
    Deliverer& deliverer;
    const Config& config;
    DeliveryRecord* record;
    std::string session_id, qid, sender;
    std::string head;                // the start of the message (the junk filter reads its header)
    std::optional<int64_t> segment;  // the delivery record's segment; none: no record is kept
    // The intent records written, and (once asked) whether they are on disk: before a send or a
    // link into a folder, never later (intents_durable()).
    std::optional<DeliveryRecord::Pending> intents;
    std::optional<Result<void>> intents_synced;
    std::vector<Target> targets;
    struct Job {
        size_t target = 0;
        std::string folder, maildir, flags;
        bool live = false;  // takes the live copy
        bool done = false;  // durable in its folder (now, or by an attempt before a crash)
    };
    std::vector<Job> jobs;                               // in RCPT order, a recipient's folders together
    std::vector<std::optional<Deliverer::Copy>> copies;  // per job, while it is made and committed
    std::optional<Deliverer::Copy> live_copy;            // written while the message arrived
    size_t live_index = 0;                               // the target the live copy was started for
    std::optional<Deliverer::Source> source;  // the message, for the scripts and the other copies
    std::optional<Deliverer::Source> stripped;  // attachment_policy strip: for the targets marked so
    bool prepared = false;                    // the first step ran
    size_t next = 0;                          // the next job to commit
    // What each recipient's scripts decided (parallel to targets), made in the first step and only
    // read after it (the commit stage's settle tracks its duplicate ids).
    struct Decision {
        SieveEnvelope envelope;
        DeliveryPlan plan;
        std::vector<FolderTarget> folders;
        bool takes_live = false;  // its INBOX copy is the live copy
    };
    std::vector<Decision> decisions;

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

    // First step: what the delivery record knows, what the filters and the scripts decide, one
    // durable intent record per recipient to store or send for, then the redirects and vacation
    // replies (each recorded as sent), then the copies to make.
    void prepare() {
        if (live_copy) {
            if (auto s = live_copy->source(); s) source.emplace(std::move(s.value()));
            else fail_pending(s.error());
        }
        for (auto& t : targets)
            if (!t.resolved && segment) check_record(t);
        if (source) scan_for_viruses();
        if (source) filter();
        if (source) strip();
        decisions.resize(targets.size());
        for (size_t k = 0; k < targets.size(); ++k)
            if (!targets[k].resolved) decide(k);
        if (segment) write_intents();
        for (size_t k = 0; k < targets.size(); ++k)
            if (!targets[k].resolved) send(k);
        for (size_t k = 0; k < targets.size(); ++k)
            if (!targets[k].resolved) plan(k);
        copies.resize(jobs.size());
        for (size_t j = 0; j < jobs.size(); ++j)
            if (jobs[j].live && live_copy) {
                live_copy->retarget(jobs[j].maildir);
                copies[j] = std::move(live_copy);
            }
        live_copy.reset();  // not stored as it is (a folder, edits): its tmp/ file goes, the Source reads on
    }

    // The virus scan (ferry-mda(8), VIRUSES), once for the transaction, before the filters: what
    // ferry-smtpd on this host scanned is not scanned again. Nothing is recorded before it: a
    // deferred transaction is scanned again on its retry.
    void scan_for_viruses() {
        VirusScanSettings settings = virus_scan_settings(config);
        if (!settings.enabled()) return;
        std::string rcpts;
        for (const auto& t : targets)
            if (!t.resolved) rcpts += (rcpts.empty() ? "" : ",") + ("<" + t.address + ">");
        if (rcpts.empty()) return;
        VirusScan v = mda::scan_for_viruses(settings, {session_id + ": " + qid, qid, sender, rcpts, head, &*source});
        using O = VirusScan::Outcome;
        for (auto& t : targets) {
            if (t.resolved || v.outcome == O::clean || v.outcome == O::unscanned) continue;
            if (v.outcome == O::unavailable) {
                resolve_failed(t, make_error(451, "4.7.1", "Virus scan unavailable, try again later"));
                continue;
            }
            if (v.outcome == O::infected) t.failed = make_error(554, "5.7.1", "Message refused: virus found: " + v.text);
            else t.reply = "<" + t.address + "> quarantined: virus found: " + v.text;
            t.resolved = true;
            t.claim = {};
            log::info("%s: %s: to=<%s> %s: %s", session_id.c_str(), qid.c_str(), t.address.c_str(),
                      v.outcome == O::infected ? "refused, virus found" : "quarantined, virus found", v.text.c_str());
        }
        if (v.outcome == O::unscanned) replace_source(std::move(v.marked));
    }

    // Every copy and script reads `s` from now on: the live copy (the message as it arrived) goes.
    void replace_source(Deliverer::Source s) {
        source.emplace(std::move(s));
        live_copy.reset();
        head.assign(std::min<uint64_t>(source->end - source->start, 65536), '\0');
        ssize_t n = ::pread(source->fd.get(), head.data(), head.size(), static_cast<off_t>(source->start));
        head.resize(n > 0 ? static_cast<size_t>(n) : 0);
    }

    // The administrator's filters (ferry-mda(8), FILTERS) run once for the transaction, before any
    // script: a rewritten message replaces the Source every copy and script reads (the live copy,
    // written as the message arrived, is dropped), so all recipients get the same message. No
    // intent is recorded before them: a deferred transaction runs them again on its retry.
    void filter() {
        FilterSettings settings = filter_settings(config);
        if (!settings.enabled()) return;
        FilterEnvelope e{qid, sender, {}, {}, client_address_from_received(head)};
        for (const auto& t : targets) {
            if (t.resolved) continue;
            if (!e.recipients.empty()) e.recipients += ' ', e.original_recipients += ' ';
            e.recipients += t.address;
            e.original_recipients += t.given.empty() ? t.address : t.given;
        }
        if (e.recipients.empty()) return;
        FilterResult r = run_filters(settings, e, source->fd.get(), source->start, source->end);
        using A = FilterResult::Action;
        switch (r.action) {
            case A::keep: return;
            case A::replaced: {
                source.emplace(Deliverer::Source{std::move(r.message), 0, r.size});
                live_copy.reset();
                head.assign(std::min<uint64_t>(r.size, 65536), '\0');
                ssize_t n = ::pread(source->fd.get(), head.data(), head.size(), 0);
                head.resize(n > 0 ? static_cast<size_t>(n) : 0);
                log::info("%s: %s: message rewritten by filter %s, size=%llu", session_id.c_str(), qid.c_str(),
                          r.which.c_str(), static_cast<unsigned long long>(r.size));
                return;
            }
            case A::reject:
                for (auto& t : targets) {
                    if (t.resolved) continue;
                    t.failed = make_error(550, "5.7.1", r.text);
                    t.resolved = true;
                    t.claim = {};
                    log::info("%s: %s: to=<%s> rejected by filter %s: %s", session_id.c_str(), qid.c_str(),
                              t.address.c_str(), r.which.c_str(), r.text.c_str());
                }
                return;
            case A::discard:
                for (auto& t : targets) {
                    if (t.resolved) continue;
                    t.reply = "<" + t.address + "> discarded by a filter";
                    t.resolved = true;
                    t.claim = {};
                    log::info("%s: %s: to=<%s> discarded by filter %s, nothing stored", session_id.c_str(), qid.c_str(),
                              t.address.c_str(), r.which.c_str());
                }
                return;
            case A::tempfail:
                log::warnx("%s: %s: filter %s deferred the message: %s", session_id.c_str(), qid.c_str(), r.which.c_str(),
                           r.text.c_str());
                return fail_pending(make_error(451, "4.3.0", "Temporary failure in a mail filter, try again later"));
        }
    }

    // attachment_policy strip (ferry-mda(8), ATTACHMENTS): the recipients whose domain strips get
    // the message with each refused file replaced by a note, made once for all of them.
    void strip() {
        const auto& settings = deliverer.attachments();
        if (!settings) return;
        std::vector<Target*> stripping;
        for (auto& t : targets)
            if (!t.resolved && settings.value().strips(t.address)) stripping.push_back(&t);
        if (stripping.empty()) return;
        auto made = strip_attachments(settings.value(), *source, qid);
        if (!made) {
            for (auto* t : stripping) resolve_failed(*t, made.error());
            return;
        }
        if (!*made) return;
        stripped.emplace(std::move(**made));
        for (auto* t : stripping) t->stripped = true;
    }

    const std::optional<Deliverer::Source>& message_of(const Target& t) const { return t.stripped ? stripped : source; }

    // A pair the record holds is answered from it when done; after an intent its copies keep the
    // base name the record gives, and plan() looks for them in their folders.
    void check_record(Target& t) {
        t.claim = record->claim(qid, t.address);
        if (!t.claim.held())
            return resolve_failed(t, make_error(451, "4.3.0", "Delivery in progress in another session, try again later"));
        auto found = record->lookup(*segment, qid, t.address);
        if (!found) return resolve_failed(t, record_error(found.error()));
        if (!*found) return;
        if ((*found)->state == DeliveryRecord::State::done) return resolve_already(t, (*found)->base);
        t.retried = true;
        t.base = (*found)->base;
    }

    Result<std::string> read_message(const Target& t, uint64_t max_body) const {
        const auto& message = message_of(t);
        if (!message) return make_error(451, "4.3.0", "no copy of the message to read");
        return read_message_start(message->fd.get(), message->start, message->end, max_body);
    }

    // The recipient's Sieve scripts decide: rejected, discarded, or something to store or send, for
    // which a Maildir base name is chosen (the intent record names it).
    void decide(size_t k) {
        Target& t = targets[k];
        Decision& d = decisions[k];
        d.envelope = SieveEnvelope{qid, sender, t.given.empty() ? t.address : t.given, t.address, t.maildir, head};
        SieveDelivery& sieve = deliverer.sieve();
        const auto& message = message_of(t);
        d.plan = sieve.decide(d.envelope, reader(t), message ? message->end - message->start : 0);
        if (d.plan.reject) return resolve_rejected(t, *d.plan.reject);
        d.folders = sieve.folders(d.envelope, d.plan);
        bool sends = !d.plan.redirects.empty() || !d.plan.vacations.empty();
        if (d.folders.empty() && !sends) return resolve_unstored(k, "discarded");
        if (!d.plan.edits.empty()) {
            auto h = read_message(t, 0);
            if (!h) return resolve_failed(t, h.error());
            auto edited = apply_edits(*h, d.plan.edits);
            t.header = std::move(edited.header);
            t.replaced = edited.replaced;
        }
        d.takes_live = k == live_index && live_copy && !t.retried && !t.header && !t.stripped &&
                       std::any_of(d.folders.begin(), d.folders.end(), [&](const FolderTarget& f) { return own(t, f); });
        if (!t.retried) t.base = d.takes_live ? live_copy->base() : deliverer.unique_base();
    }

    // Whether folder f is in the recipient's own Maildir++ tree (one file system with its INBOX).
    static bool own(const Target& t, const FolderTarget& f) {
        return f.maildir == t.maildir || f.maildir.starts_with(t.maildir + "/");
    }

    SieveDelivery::Reader reader(const Target& t) const {
        return [this, &t](uint64_t max_body) { return read_message(t, max_body); };
    }

    // After the intent is durable: the recipient's redirects and vacation replies, each recorded as
    // sent before the next step, so an attempt after a crash sends what was not and nothing twice.
    // A redirect that failed (now or then) adds INBOX to the folders.
    void send(size_t k) {
        Target& t = targets[k];
        Decision& d = decisions[k];
        if (d.plan.redirects.empty() && d.plan.vacations.empty()) return;
        if (auto r = intents_durable(); !r) return resolve_failed(t, r.error());
        SendLedger ledger;
        ledger.outcome = [this, &t](const std::string& what) {
            return record->send_outcome(*segment, qid, t.address, what);
        };
        ledger.record = [this, &t](const std::string& what, bool ok) {
            if (auto r = record->sent(*segment, qid, t.address, what, ok); !r)
                log::warnx("%s: %s: to=<%s> %s not recorded: %s", session_id.c_str(), qid.c_str(), t.address.c_str(),
                           what.c_str(), r.error().what().c_str());
            test_pause_point(config, "mda-after-send", qid);
        };
        SieveDelivery& sieve = deliverer.sieve();
        size_t copies_before = d.plan.copies.size();
        auto r = sieve.send(d.envelope, reader(t), d.plan, deliverer.auto_reply(), segment ? &ledger : nullptr);
        if (!r) return resolve_failed(t, record_error(r.error()));
        if (d.plan.copies.size() != copies_before) d.folders = sieve.folders(d.envelope, d.plan);
    }

    // The recipient's folders become jobs; on a retry those that hold its copy already are done.
    void plan(size_t k) {
        Target& t = targets[k];
        Decision& d = decisions[k];
        if (d.folders.empty()) return resolve_unstored(k, d.plan.discard ? "discarded" : "redirected");
        // The live copy is stored as it is in one of the account's folders: INBOX when the script
        // keeps the message there, else the first folder it files into (a link, not a second write).
        auto live_folder = std::find_if(d.folders.begin(), d.folders.end(),
                                        [&](const FolderTarget& f) { return f.maildir == t.maildir; });
        if (live_folder == d.folders.end())
            live_folder = std::find_if(d.folders.begin(), d.folders.end(), [&](const FolderTarget& f) { return own(t, f); });
        bool all_there = true;
        for (auto it = d.folders.begin(); it != d.folders.end(); ++it) {
            const FolderTarget& f = *it;
            Job job{k, f.folder, f.maildir, f.flags, d.takes_live && it == live_folder, false};
            if (t.retried) {
                auto there = already_there(f.maildir, t.base);
                if (!there) return resolve_failed(t, record_error(there.error()));
                job.done = *there;
            }
            all_there = all_there && job.done;
            jobs.push_back(std::move(job));
        }
        if (t.retried && all_there) {
            if (auto r = record->done(*segment, qid, t.address, t.base); !r)
                log::warnx("%s: %s: %s", session_id.c_str(), qid.c_str(), r.error().what().c_str());
            deliverer.sieve().track(d.envelope, d.plan);
            resolve_already(t, t.base);
        }
    }

    // Whether `maildir` holds the copy named `base`: linked before a crash, perhaps without the
    // fsync of its directory, which is made durable now.
    static Result<bool> already_there(const std::string& maildir, const std::string& base) {
        auto name = maildir::find_base(maildir, base);
        if (!name) return name.error();
        if (!*name) return false;  // the crash came before the link: this attempt makes it
        std::string sub = (*name)->substr(0, 3);
        if (auto r = fsync_dir(maildir + "/" + sub); !r) return r.error();
        if (sub != "new")
            if (auto r = fsync_dir(maildir + "/new"); !r) return r.error();
        return true;
    }

    void resolve_rejected(Target& t, const std::string& reason) {
        std::string text = reason;
        for (char& c : text)
            if (c == '\r' || c == '\n') c = ' ';
        t.failed = make_error(550, "5.7.1", text.empty() ? "Rejected by the recipient's Sieve script" : text);
        t.resolved = true;
        t.claim = {};
        log::info("%s: %s: to=<%s> rejected by Sieve: %s", session_id.c_str(), qid.c_str(), t.address.c_str(), text.c_str());
    }
    // Nothing to store: done (its sends are made), so a retry neither stores nor sends.
    void resolve_unstored(size_t k, const char* what) {
        Target& t = targets[k];
        if (segment && !t.base.empty())
            if (auto r = record->done(*segment, qid, t.address, t.base); !r)
                log::warnx("%s: %s: %s", session_id.c_str(), qid.c_str(), r.error().what().c_str());
        deliverer.sieve().track(decisions[k].envelope, decisions[k].plan);
        t.reply = "<" + t.address + "> " + what + " by Sieve";
        t.resolved = true;
        t.claim = {};
        log::info("%s: %s: to=<%s> %s by Sieve, nothing stored", session_id.c_str(), qid.c_str(), t.address.c_str(), what);
    }

    void write_intents() {
        std::vector<DeliveryRecord::Intent> intents;
        for (auto& t : targets)
            if (!t.resolved) intents.push_back({t.address, t.base});
        if (intents.empty()) return;
        auto written = record->write_intents(*segment, qid, intents);
        if (!written) return fail_pending(record_error(written.error()));
        this->intents = std::move(*written);
        test_pause_point(config, "mda-after-intent", qid);
    }

    // Waits (once) for the intent records' fdatasync, which the record's sync thread runs while this
    // transaction goes on (a copy's own fsync meanwhile), shared with other transactions.
    Result<void> intents_durable() {
        if (!intents) return {};
        if (!intents_synced) {
            auto r = record->wait(*intents);
            intents_synced = r ? Result<void>() : Result<void>(record_error(r.error()));
        }
        return *intents_synced;
    }

    void fail_pending(const Error& e) {
        for (auto& t : targets)
            if (!t.resolved) resolve_failed(t, e);
    }

    // Commit stage, sync: the job's copy made (from the Source unless it is the live one), its
    // final LF added, the quota checked and the file fsync'd. A failed copy goes at once.
    Result<void> seal(size_t j) {
        const Job& job = jobs[j];
        Target& t = targets[job.target];
        auto& copy = copies[j];
        if (!copy) {
            const auto& message = message_of(t);
            if (!message) return make_error(451, "4.3.0", "Temporary failure writing the mailbox");
            // A tmp/ file of this name was left by the attempt a crash cut short (the claim is ours).
            if (t.retried) (void)::unlink((job.maildir + "/tmp/" + t.base).c_str());
            auto started = deliverer.start(t.account, job.maildir, sender, t.base);
            if (!started) return started.error();
            copy.emplace(std::move(started.value()));
            Result<void> r = t.header ? copy->append(*t.header) : Result<void>();
            if (r) r = copy->append_message_of(*message, t.header ? t.replaced : 0);
            if (!r) {
                copy.reset();
                return r;
            }
        }
        copy->set_flags(job.flags);
        auto sealed = deliverer.seal(qid, t.account, t.maildir, *copy);
        if (sealed) sealed = intents_durable();  // the intent on disk before the link (ferry-mda(8))
        if (!sealed) copy.reset();
        return sealed;
    }

    // Commit stage, publish: linked into new/ (cur/ with flags), its name noted for the folder's UIDs.
    Result<std::string> link(size_t j, FolderUids& uids) {
        auto dir = Deliverer::link(*copies[j]);
        if (!dir) {
            copies[j].reset();
            return dir.error();
        }
        uids.linked(jobs[j].maildir, copies[j]->name());
        return dir;
    }

    // Whether job j is its recipient's last copy still to make.
    bool last_of_target(size_t j) const {
        for (size_t i = j + 1; i < jobs.size(); ++i)
            if (jobs[i].target == jobs[j].target && !jobs[i].done) return false;
        return true;
    }

    // Commit stage, settle: after the fsync of the folder's directory, the UIDs of the folder's
    // batch, and the done record once the recipient's last copy is durable.
    Result<void> settle(size_t j, const Result<void>& dir, FolderUids& uids) {
        const Job& job = jobs[j];
        Target& t = targets[job.target];
        std::string note;
        auto name = Deliverer::settle(*copies[j], dir, &note);
        copies[j].reset();
        if (dir && uids.pending(job.maildir) > 1) test_pause_point(config, "mda-batch-linked", qid);
        uids.settled(job.maildir, dir, name ? std::optional<std::string>(*name) : std::nullopt, session_id + ": " + qid);
        if (!name) return name.error();
        if (!note.empty()) log::warnx("%s: %s: to=<%s> %s", session_id.c_str(), qid.c_str(), t.address.c_str(), note.c_str());
        log::info("%s: %s: to=<%s> delivered to maildir%s%s as %s", session_id.c_str(), qid.c_str(), t.address.c_str(),
                  job.maildir == t.maildir ? "" : " folder ", job.maildir == t.maildir ? "" : job.folder.c_str(), name->c_str());
        test_pause_point(config, "mda-after-link", qid);
        if (last_of_target(j)) {
            // The duplicate ids first: a retry that finds no done record decides again, and its own ids do not count.
            deliverer.sieve().track(decisions[job.target].envelope, decisions[job.target].plan);
            test_pause_point(config, "mda-after-track", qid);
            if (segment)
                if (auto r = record->done(*segment, qid, t.address, t.base); !r)
                    log::warnx("%s: %s: %s", session_id.c_str(), qid.c_str(), r.error().what().c_str());
        }
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
        t.given = std::string(address);
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
    if (!head_done_ && head_.size() < kHeadKept) {
        size_t from = head_.empty() ? 0 : head_.size() - 1;
        head_.append(chunk.substr(0, kHeadKept - head_.size()));
        // Only the header section is read from it: the body of a large message is not copied.
        if (size_t end = head_.find("\n\n", from); end != std::string::npos) {
            head_.resize(end + 2);
            head_done_ = true;
        }
    }
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
    txn_ = std::make_shared<Transaction>(Transaction{deliverer_, config_, record_, session_id_, qid, sender_});
    txn_->head = std::move(head_);
    head_.clear();
    head_done_ = false;
    if (record_ && !received_qid.empty()) txn_->segment = record_->segment_of(received_qid);
    for (auto& t : targets_) {
        if (!t.failed && !live_copy_) t.failed = make_error(451, "4.3.0", "Temporary failure writing the mailbox");
        if (t.failed) txn_->resolve_failed(t, *t.failed);
    }
    txn_->targets = std::move(targets_);
    targets_.clear();
    txn_->live_copy = std::move(live_copy_);
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
    size_t j = txn->next;
    while (j < txn->jobs.size() && (txn->jobs[j].done || txn->targets[txn->jobs[j].target].resolved)) ++j;
    if (j == txn->jobs.size()) return;
    txn->next = j + 1;
    stage_.submit(commit_item(txn, j));
}

CommitStage::Item MaildirBackend::commit_item(const std::shared_ptr<Transaction>& txn, size_t j) {
    CommitStage::Item item;
    FolderUids* uids = &uids_;
    item.sync = [txn, j] { return txn->seal(j); };
    item.publish = [txn, j, uids] { return txn->link(j, *uids); };
    item.settle = [txn, j, uids](const Result<void>& dir) { return txn->settle(j, dir, *uids); };
    std::weak_ptr<bool> alive = alive_;
    item.done = [this, alive, txn, j](Result<void> r) {
        auto& job = txn->jobs[j];
        Target& t = txn->targets[job.target];
        if (!r) {
            txn->resolve_failed(t, r.error());
        } else {
            job.done = true;
            if (txn->last_of_target(j)) txn->resolve_delivered(t);
        }
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
    head_done_ = false;
    size_ = 0;
    txn_.reset();  // a step still running keeps what it touches
    reply_ = nullptr;
    replied_ = 0;
}

}  // namespace ferry::mda
