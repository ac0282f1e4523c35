// LDA mode: `ferry-mda -d user@domain [-f sender] < message`, for Postfix, Exim or procmail-style callers.
#include "mda/lda.hpp"

#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string_view>

#include "common/auth/accounts.hpp"
#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "common/spool/spool.hpp"
#include "common/store/index.hpp"
#include "mda/attachment_strip.hpp"
#include "mda/delivery.hpp"
#include "mda/filters.hpp"
#include "mda/sieve_delivery.hpp"
#include "mda/trace_headers.hpp"
#include "mda/virus_scan.hpp"

namespace ferry::mda {

namespace {

constexpr size_t kChunk = 65536;      // bytes read from standard input at a time
constexpr size_t kHeadKept = 65536;   // the start of the message kept for its Received: queue id

// Stdin turned into LF line ends piece by piece: each CRLF becomes LF and a lone CR stays, as
// to_lf() does to a whole message; a CR at the end of one piece waits for the next.
class LfStream {
public:
    // The LF form of `raw`, appended to `out` (cleared first).
    void convert(std::string_view raw, std::string& out) {
        out.clear();
        if (raw.empty()) return;
        if (pending_cr_) {
            pending_cr_ = false;
            if (raw.front() != '\n') out += '\r';
        }
        bool ends_cr = raw.back() == '\r';
        if (ends_cr) raw.remove_suffix(1);
        out += to_lf(raw);
        pending_cr_ = ends_cr;
    }
    // What is still held back at the end of the input.
    std::string flush() {
        std::string out = pending_cr_ ? "\r" : "";
        pending_cr_ = false;
        return out;
    }

private:
    bool pending_cr_ = false;
};

// Where the message goes while stdin is read: the Maildir copy, or the error that stopped it. After
// an error the rest is still read, so a message too large or holding a NUL gets 65 as before.
struct Sink {
    Deliverer::Copy* copy = nullptr;
    std::optional<Error> failed;
    std::string head;

    void write(std::string_view lf) {
        if (head.size() < kHeadKept) head.append(lf.substr(0, kHeadKept - head.size()));
        if (failed || !copy || lf.empty()) return;
        if (auto r = copy->append(lf); !r) failed = r.error();
    }
};

// Why reading the message stopped short of its end.
enum class ReadEnd { complete, too_large, nul, read_error };

// Streams all of `fd` into `sink` in kChunk pieces, reading at most `limit` + 1 bytes so that an
// oversized message is known without storing it; a NUL stops it too (smtp::nul_error's rule).
ReadEnd stream_message(int fd, uint64_t limit, Sink& sink) {
    LfStream lf;
    std::string buf(kChunk, '\0');
    std::string out;
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            log::error("cannot read the message from standard input");
            return ReadEnd::read_error;
        }
        if (n == 0) break;
        std::string_view piece(buf.data(), static_cast<size_t>(n));
        total += piece.size();
        if (total > limit) return ReadEnd::too_large;
        if (piece.find('\0') != std::string_view::npos) return ReadEnd::nul;
        lf.convert(piece, out);
        sink.write(out);
    }
    sink.write(lf.flush());
    return ReadEnd::complete;
}

// "user@domain" or "<user@domain>" as a path; `allow_null` accepts "" and "<>".
Result<smtp::Path> parse_address(std::string text, bool allow_null) {
    if (text.empty() || text.front() != '<') text = "<" + text + ">";
    return smtp::parse_path(text, allow_null);
}

int exit_for(const Error& e) { return e.code >= 500 ? kExitCantCreat : kExitTempFail; }

// One folder's copy: the live one as it is, else a new copy from the Source (header edits applied).
Result<std::string> store_copy(Deliverer& deliverer, const std::string& qid, const Account& account,
                               const std::string& root, const std::string& sender, const FolderTarget& f,
                               Deliverer::Copy* live, const Deliverer::Source& src, const std::optional<EditedHeader>& edited) {
    std::optional<Deliverer::Copy> fresh;
    if (!live) {
        auto started = deliverer.start(account, f.maildir, sender);
        if (!started) return started.error();
        fresh.emplace(std::move(started.value()));
        Result<void> r = edited ? fresh->append(edited->header) : Result<void>();
        if (r) r = fresh->append_message_of(src, edited ? edited->replaced : 0);
        if (!r) return r.error();
        live = &*fresh;
    }
    live->set_flags(f.flags);
    if (auto r = deliverer.seal(qid, account, root, *live); !r) return r.error();  // the quota: the whole account's
    auto dir = Deliverer::link(*live);
    if (!dir) return dir.error();
    std::string note;
    auto name = Deliverer::settle(*live, fsync_dir(*dir), &note);
    if (!name) return name.error();
    if (!note.empty()) log::warnx("%s: to=<%s> %s", qid.c_str(), account.address.c_str(), note.c_str());
    if (auto uid = store::append_delivered(f.maildir, *name); !uid)
        log::warnx("%s: %s: no UID at delivery: %s", qid.c_str(), f.maildir.c_str(), uid.error().what().c_str());
    return name;
}

// The administrator's filters (ferry-mda(8), FILTERS) over the message: -1 to go on (`filtered`
// holds the message when one rewrote it), else the exit code of the decision.
int run_lda_filters(const Config& config, const std::string& qid, const Account& account, const std::string& sender,
                    const std::string& rcpt, const Deliverer::Source& src, std::optional<Deliverer::Source>& filtered,
                    const std::string& original_head, std::string& head) {
    FilterSettings settings = filter_settings(config);
    if (!settings.enabled()) return -1;
    // This mode runs as its caller: a filter never gets root where the daemon would drop it.
    if (::geteuid() == 0 && !config.str("mail_user").empty()) {
        log::errorx("%s: filters not run as root: run ferry-mda -d as mail_user", qid.c_str());
        return kExitTempFail;
    }
    FilterResult r = run_filters(settings, {qid, sender, account.address, rcpt, client_address_from_received(original_head)}, src.fd.get(), src.start, src.end);
    const char* to = account.address.c_str();
    switch (r.action) {
        case FilterResult::Action::keep: return -1;
        case FilterResult::Action::replaced:
            log::info("%s: message rewritten by filter %s, size=%llu", qid.c_str(), r.which.c_str(),
                      static_cast<unsigned long long>(r.size));
            filtered.emplace(Deliverer::Source{std::move(r.message), 0, r.size});
            if (auto h = read_message_start(filtered->fd.get(), 0, r.size, 0); h) head = *h;
            return -1;
        case FilterResult::Action::reject:
            log::info("%s: to=<%s> rejected by filter %s: %s", qid.c_str(), to, r.which.c_str(), r.text.c_str());
            fprintf(stderr, "%s\n", r.text.c_str());
            return kExitNoPerm;
        case FilterResult::Action::discard:
            log::info("%s: to=<%s> discarded by filter %s, nothing stored", qid.c_str(), to, r.which.c_str());
            return kExitOk;
        case FilterResult::Action::tempfail: break;
    }
    log::warnx("%s: filter %s deferred the message: %s", qid.c_str(), r.which.c_str(), r.text.c_str());
    fprintf(stderr, "Temporary failure in a mail filter, try again later\n");
    return kExitTempFail;
}

// The virus scan (ferry-mda(8), VIRUSES): -1 to go on (`marked` holds the message when it goes
// unscanned, virus_scan_fail_open), else the exit code of the verdict.
int scan_lda(const Config& config, const std::string& qid, const Account& account, const std::string& sender,
             const Deliverer::Source& src, const std::string& head, std::optional<Deliverer::Source>& marked,
             std::string& marked_head) {
    VirusScanSettings settings = virus_scan_settings(config);
    if (!settings.enabled()) return -1;
    VirusScan v = scan_for_viruses(settings, {qid, qid, sender, "<" + account.address + ">", head, &src});
    switch (v.outcome) {
        case VirusScan::Outcome::clean: return -1;
        case VirusScan::Outcome::infected:
            fprintf(stderr, "Message refused: virus found: %s\n", v.text.c_str());
            return kExitNoPerm;
        case VirusScan::Outcome::quarantined: return kExitOk;
        case VirusScan::Outcome::unavailable:
            fprintf(stderr, "Virus scan unavailable, try again later\n");
            return kExitTempFail;
        case VirusScan::Outcome::unscanned: break;
    }
    marked.emplace(std::move(v.marked));
    if (auto h = read_message_start(marked->fd.get(), 0, marked->end, 0); h) marked_head = *h;
    return -1;
}

// attachment_policy strip for the recipient's domain (ferry-mda(8), ATTACHMENTS): -1 to go on
// (`filtered` then holds the message with its refused files replaced, when it had any), else the
// exit code. `head` follows the message.
int strip_lda(const Deliverer& deliverer, const std::string& qid, const Account& account, const Deliverer::Source& src,
              std::optional<Deliverer::Source>& filtered, std::string& head) {
    const auto& settings = deliverer.attachments();
    if (!settings || !settings.value().strips(account.address)) return -1;
    auto stripped = strip_attachments(settings.value(), filtered ? *filtered : src, qid);
    if (!stripped) {
        log::errorx("%s: to=<%s> not delivered: %s", qid.c_str(), account.address.c_str(), stripped.error().what().c_str());
        return kExitTempFail;
    }
    if (!*stripped) return -1;
    filtered = std::move(*stripped);
    if (auto h = read_message_start(filtered->fd.get(), 0, filtered->end, 0); h) head = *h;
    return -1;
}

// What the Sieve scripts decide, carried out: an exit code. No delivery record is kept in this
// mode: a failure after one folder's copy makes the caller try again, and that folder gets two.
int deliver_planned(const Config& config, Deliverer& deliverer, const std::string& qid, const Account& account, const std::string& root,
                    const std::string& sender, const std::string& rcpt, const std::string& head, Deliverer::Copy& copy) {
    auto src = copy.source();
    if (!src) {
        log::errorx("%s: to=<%s> not delivered: %s", qid.c_str(), account.address.c_str(), src.error().what().c_str());
        return kExitTempFail;
    }
    std::optional<Deliverer::Source> marked;
    std::string marked_head;
    if (int code = scan_lda(config, qid, account, sender, *src, head, marked, marked_head); code >= 0) return code;
    const Deliverer::Source& in = marked ? *marked : *src;
    const std::string& in_head = marked ? marked_head : head;
    std::optional<Deliverer::Source> filtered;
    std::string filtered_head;
    if (int code = run_lda_filters(config, qid, account, sender, rcpt, in, filtered, in_head, filtered_head); code >= 0) return code;
    if (int code = strip_lda(deliverer, qid, account, in, filtered, filtered_head); code >= 0) return code;
    const Deliverer::Source& msg = filtered ? *filtered : in;
    SieveEnvelope e{qid, sender, rcpt, account.address, root, filtered ? filtered_head : in_head};
    SieveDelivery::Reader read = [&msg](uint64_t max_body) {
        return read_message_start(msg.fd.get(), msg.start, msg.end, max_body);
    };
    SieveDelivery& sieve = deliverer.sieve();
    DeliveryPlan plan = sieve.decide(e, read, msg.end - msg.start);
    if (auto sent = sieve.send(e, read, plan, deliverer.auto_reply()); !sent)  // no ledger: cannot fail
        log::warnx("%s: to=<%s> %s", qid.c_str(), account.address.c_str(), sent.error().what().c_str());
    if (plan.reject) {
        log::info("%s: to=<%s> rejected by Sieve: %s", qid.c_str(), account.address.c_str(), plan.reject->c_str());
        fprintf(stderr, "%s\n", plan.reject->empty() ? "Rejected by the recipient's Sieve script" : plan.reject->c_str());
        return kExitNoPerm;
    }
    auto folders = sieve.folders(e, plan);
    if (folders.empty()) {
        log::info("%s: to=<%s> %s by Sieve, nothing stored", qid.c_str(), account.address.c_str(),
                  plan.discard ? "discarded" : "redirected");
        sieve.track(e, plan);
        return kExitOk;
    }
    std::optional<EditedHeader> edited;
    if (!plan.edits.empty()) {
        auto h = read(0);
        if (!h) {
            log::errorx("%s: to=<%s> not delivered: %s", qid.c_str(), account.address.c_str(), h.error().what().c_str());
            return kExitTempFail;
        }
        edited = apply_edits(*h, plan.edits);
    }
    bool live_used = false;
    for (const auto& f : folders) {
        bool take_live = !live_used && !edited && !filtered && !marked && f.maildir == root;
        live_used = live_used || take_live;
        auto name = store_copy(deliverer, qid, account, root, sender, f, take_live ? &copy : nullptr, msg, edited);
        if (!name) {
            log::errorx("%s: to=<%s> not delivered: %s", qid.c_str(), account.address.c_str(), name.error().what().c_str());
            return exit_for(name.error());
        }
        log::info("%s: to=<%s> delivered to maildir%s%s as %s", qid.c_str(), account.address.c_str(),
                  f.maildir == root ? "" : " folder ", f.maildir == root ? "" : f.folder.c_str(), name->c_str());
    }
    sieve.track(e, plan);
    return kExitOk;
}

}  // namespace

int run_lda(const Config& config, const std::string& recipient, const std::optional<std::string>& sender, int in_fd) {
    auto rcpt = parse_address(recipient, false);
    if (!rcpt) {
        log::errorx("-d %s: %s", recipient.c_str(), rcpt.error().what().c_str());
        return kExitUsage;
    }
    auto from = parse_address(sender.value_or(""), true);
    if (!from) {
        log::errorx("-f %s: %s", sender.value_or("").c_str(), from.error().what().c_str());
        return kExitUsage;
    }
    std::string from_mailbox = from->null ? "" : from->mailbox();

    auto accounts = open_account_db(config.str("account_db"));
    accounts->set_recipient_delimiter(config.str("recipient_delimiter"));
    Deliverer deliverer(config, *accounts);
    if (!deliverer.attachments()) {
        log::errorx("%s", deliverer.attachments().error().what().c_str());
        return kExitTempFail;
    }
    auto account = deliverer.find_account(rcpt->mailbox());
    if (!account) {
        log::errorx("to=<%s>: %s", rcpt->mailbox().c_str(), account.error().what().c_str());
        return account.error().code == 550 ? kExitNoUser : kExitTempFail;
    }

    // The Maildir copy is written as stdin arrives; a message refused or cut short leaves nothing,
    // as an unfinished copy removes its tmp/ file.
    Sink sink;
    std::string maildir;
    std::optional<Deliverer::Copy> copy;
    if (auto dir = deliverer.prepare(*account); !dir) {
        sink.failed = dir.error();
    } else {
        maildir = *dir;
        auto started = deliverer.start(*account, maildir, from_mailbox);
        if (started) copy.emplace(std::move(started.value()));
        else sink.failed = started.error();
    }
    sink.copy = copy ? &*copy : nullptr;
    uint64_t limit = smtp::delivery_size_limit(config.size("message_size_limit"));
    switch (stream_message(in_fd, limit, sink)) {
    case ReadEnd::complete:
        break;
    case ReadEnd::read_error:
        return kExitTempFail;
    case ReadEnd::too_large:
        log::errorx("to=<%s>: message larger than message_size_limit (%llu bytes)", account->address.c_str(),
                    static_cast<unsigned long long>(limit));
        return kExitDataErr;
    case ReadEnd::nul:
        // The rule of the SMTP and LMTP DATA reader (smtp::nul_error): a NUL is refused, never stored.
        log::errorx("to=<%s>: message refused: %s", account->address.c_str(), smtp::nul_error().text.c_str());
        return kExitDataErr;
    }
    std::string qid = queue_id_from_received(sink.head);
    if (qid.empty()) qid = spool::new_queue_id();

    if (sink.failed) {
        log::errorx("%s: to=<%s> not delivered: %s", qid.c_str(), account->address.c_str(), sink.failed->what().c_str());
        // Only a permanent error (the address cannot name a Maildir) may bounce; a disk error is the
        // 451 4.3.0 LMTP would answer, so the MTA keeps the message and tries again.
        return sink.failed->code >= 500 ? kExitCantCreat : kExitTempFail;
    }
    int code = deliver_planned(config, deliverer, qid, *account, maildir, from_mailbox, rcpt->mailbox(), sink.head, *copy);
    if (code != kExitOk) return code;
    test_pause_point(config, "mda-before-reply", qid);
    return kExitOk;
}

}  // namespace ferry::mda
