// The selected state of a session: SELECT, EXAMINE, STORE, EXPUNGE, CLOSE and UNSELECT.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "common/base/log.hpp"
#include "common/mail/imap_body.hpp"
#include "common/mail/mime.hpp"
#include "common/mail/mime_section.hpp"
#include "common/store/folders.hpp"
#include "common/store/maildir.hpp"
#include "imapd/server.hpp"
#include "imapd/session.hpp"

namespace ferry::imap {

namespace {

constexpr const char* kFlags = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

}  // namespace

bool Session::selected() const { return state_ == State::selected; }

// FLAGS and PERMANENTFLAGS with the folder's keywords: a client may only see a keyword in a FETCH
// after a FLAGS response named it (RFC 9051 section 7.3.5).
std::string Session::flags_responses() {
    std::string kw;
    for (const auto& k : index_->keywords()) kw += " " + k;
    keywords_announced_ = index_->keywords().size();
    std::string r = std::string("* FLAGS (") + kFlags + kw + ")\r\n";
    return r + (read_only_ ? "* OK [PERMANENTFLAGS ()] read-only\r\n"
                           : "* OK [PERMANENTFLAGS (" + std::string(kFlags) + kw + " \\*)] flags permitted\r\n");
}

// FLAGS again when the folder gained keywords since the client last heard.
std::string Session::new_keywords() {
    return index_->keywords().size() > keywords_announced_ ? flags_responses() : std::string();
}

std::string Session::flags_of(const store::Message& m) const {
    std::string out;
    for (char c : m.flags)
        if (const char* f = store::imap_flag(c)) out += (out.empty() ? "" : " ") + std::string(f);
    for (uint32_t k : m.keywords)
        if (k < index_->keywords().size()) out += (out.empty() ? "" : " ") + index_->keywords()[k];
    // RFC 3501 section 2.3.2; IMAP4rev2 has no \Recent.
    if (!rev2_ && is_recent(m.uid)) out += (out.empty() ? "" : " ") + std::string("\\Recent");
    return "(" + out + ")";
}

void Session::cmd_select(const Command& cmd) {
    const auto& a = std::get<SelectArgs>(cmd.args);
    if (a.qresync && !qresync_) return tagged("BAD", "QRESYNC needs ENABLE QRESYNC first");
    // RFC 9051 section 6.3.2: a failed SELECT leaves no mailbox selected; RFC 7162 section 3.2.11
    // marks where the old mailbox's responses end.
    if (state_ == State::selected) reply("* OK [CLOSED] previous mailbox closed\r\n");
    close_mailbox(false);
    if (a.condstore || a.qresync) condstore_ = true;
    auto name = folder_name(a.mailbox);
    if (!name) return;
    if (!folder_exists(*name)) return tagged("NO", "[NONEXISTENT] no such mailbox");
    // Another session's index of the folder, when there is one, saves reading the whole file.
    auto index = open_synced(*name);
    if (!index) {
        log::warnx("%s: SELECT %s: %s", id_.c_str(), name->c_str(), index.error().what().c_str());
        return tagged("NO", "[SERVERBUG] cannot open the mailbox");
    }
    index_ = std::move(index.value());
    read_only_ = cmd.verb == Verb::examine;
    mailbox_ = *name;
    uids_.clear();
    saved_.clear();
    recent_.clear();
    for (const auto& m : index_->messages()) uids_.push_back(m.uid);
    state_ = State::selected;
    take_recent();
    modseq_seen_ = index_->highest_modseq();
    std::string r = flags_responses();
    r += "* " + std::to_string(uids_.size()) + " EXISTS\r\n";
    if (!rev2_) r += "* " + std::to_string(recent_count()) + " RECENT\r\n";
    // RFC 3501 section 6.3.1: the first unseen message, for IMAP4rev1 clients (RFC 9051 dropped it).
    const auto& msgs = index_->messages();
    auto unseen = std::find_if(msgs.begin(), msgs.end(), [](const store::Message& m) { return m.flags.find(store::kSeen) == std::string::npos; });
    if (!rev2_ && unseen != msgs.end()) r += "* OK [UNSEEN " + std::to_string(unseen - msgs.begin() + 1) + "] first unseen\r\n";
    r += "* OK [UIDVALIDITY " + std::to_string(index_->uidvalidity()) + "] UIDs valid\r\n";
    r += "* OK [UIDNEXT " + std::to_string(index_->uidnext()) + "] predicted next UID\r\n";
    r += "* OK [HIGHESTMODSEQ " + std::to_string(index_->highest_modseq()) + "] highest\r\n";
    // RFC 9051 section 6.3.2: IMAP4rev2 names the mailbox selected in a LIST response.
    if (rev2_) r += "* LIST () \"/\" " + wire_name(mailbox_) + "\r\n";
    reply(r);
    if (a.qresync) qresync_select(*a.qresync);
    tagged("OK", read_only_ ? "[READ-ONLY] EXAMINE completed" : "[READ-WRITE] SELECT completed");
}

// Leaves the selected state; CLOSE also removes the \Deleted messages (RFC 9051 section 6.4.1).
void Session::close_mailbox(bool expunge) {
    if (state_ != State::selected) return;
    if (expunge && !read_only_) {
        std::vector<uint32_t> doomed;
        for (const auto& m : index_->messages())
            if (m.flags.find(store::kDeleted) != std::string::npos) doomed.push_back(m.uid);
        if (auto r = index_->expunge(doomed); !r)
            log::warnx("%s: CLOSE %s: %s", id_.c_str(), mailbox_.c_str(), r.error().what().c_str());
    }
    index_.reset();
    uids_.clear();
    mailbox_.clear();
    state_ = State::authenticated;
}

// Tells the client what changed behind its back (at NOOP and after its own commands that allow
// it): EXPUNGE for each vanished message, from the highest number down, then the new EXISTS.
// The sync is shared with the other sessions on the folder: once per turn of the loop lists the
// Maildir, not once per command (what this process changes is in the shared index already).
void Session::report_changes(bool expunges, bool sync) {
    if (sync) server_.sync_shared(*index_);
    std::string out;
    if (expunges) {
        std::vector<uint32_t> gone;
        for (size_t i = uids_.size(); i-- > 0;) {
            if (index_->find(uids_[i])) continue;
            gone.push_back(uids_[i]);
            if (!qresync_) out += "* " + std::to_string(i + 1) + " EXPUNGE\r\n";
            uids_.erase_at(i);
        }
        // RFC 7162 section 3.2.10: once QRESYNC is on, VANISHED with UIDs replaces EXPUNGE.
        std::reverse(gone.begin(), gone.end());
        if (qresync_ && !gone.empty()) out += "* VANISHED " + uid_set_text(ranges_of(gone)) + "\r\n";
    }
    size_t before = uids_.size();
    uint32_t last = uids_.empty() ? 0 : uids_.back();
    for (const auto& m : index_->messages())
        if (m.uid > last) uids_.push_back(m.uid);
    if (uids_.size() != before) {
        out += "* " + std::to_string(uids_.size()) + " EXISTS\r\n";
        take_recent();
        // RFC 3501 section 7.3.2: RECENT goes with EXISTS, as clients expect it there.
        if (!rev2_) out += "* " + std::to_string(recent_count()) + " RECENT\r\n";
    }
    // Flags another session or a Maildir reader changed since the last report.
    for (size_t i = 0; i < before; ++i) {
        const store::Message* m = index_->find(uids_[i]);
        if (m && m->modseq > modseq_seen_)
            out += "* " + std::to_string(i + 1) + " FETCH (FLAGS " + flags_of(*m) + fetch_extras(*m, false) + ")\r\n";
    }
    modseq_seen_ = index_->highest_modseq();
    out.insert(0, new_keywords());
    if (!out.empty()) reply(out);
}

// The UIDs a command's set names, in ascending order: sequence numbers through uids_.
std::optional<std::vector<uint32_t>> Session::resolve_uids(const SequenceSet& set, bool uid) {
    std::vector<uint32_t> out;
    uint32_t max = uid ? (uids_.empty() ? 0 : uids_.back()) : static_cast<uint32_t>(uids_.size());
    std::vector<Span> saved = set.saved ? saved_spans(uid) : std::vector<Span>{};
    auto spans = resolve(set, max, uid, &saved);
    if (!spans) return std::nullopt;
    if (uid) {
        for (uint32_t u : uids_)
            if (contains(*spans, u)) out.push_back(u);
    } else {
        for (const Span& s : *spans)
            for (uint32_t n = s.lo; n <= s.hi && n >= 1; ++n) out.push_back(uids_[n - 1]);
    }
    return out;
}

void Session::cmd_store(const Command& cmd) {
    const auto& a = std::get<StoreArgs>(cmd.args);
    if (read_only_) return tagged("NO", "[READ-ONLY] mailbox is read-only");
    if (a.unchanged_since) enable_condstore();  // RFC 7162 section 3.1: a CONDSTORE-enabling command
    auto uids = resolve_uids(a.set, cmd.uid);
    if (!uids) return tagged("BAD", "invalid message sequence number");
    std::string letters;
    std::vector<std::string> keywords;
    for (const auto& f : a.flags) {
        if (char c = store::flag_letter(f)) letters += c;
        else if (!f.empty() && f[0] == '\\') return tagged("BAD", "cannot store the flag " + f);
        else keywords.push_back(f);
    }
    auto mode = a.mode == StoreArgs::Mode::add      ? store::FlagMode::add
                : a.mode == StoreArgs::Mode::remove ? store::FlagMode::remove
                                                    : store::FlagMode::replace;
    report_changes(false);  // others' changes first: ours are answered below, not again at the next NOOP
    std::vector<uint32_t> modified;
    if (auto r = index_->store_flags(*uids, mode, letters, keywords, a.unchanged_since, &modified); !r) {
        log::warnx("%s: STORE %s: %s", id_.c_str(), mailbox_.c_str(), r.error().what().c_str());
        return tagged("NO", "[SERVERBUG] cannot store the flags");
    }
    std::string out = new_keywords();
    modseq_seen_ = index_->highest_modseq();
    auto seq_of = [&](uint32_t uid) {
        return uids_.lower_bound(uid) + 1;
    };
    for (uint32_t uid : *uids) {
        const store::Message* m = index_->find(uid);
        if (!m || std::binary_search(modified.begin(), modified.end(), uid)) continue;
        // RFC 7162 section 3.1.3: with CONDSTORE on, .SILENT still reports the new MODSEQ.
        if (a.silent && !condstore_) continue;
        std::string items = cmd.uid || qresync_ ? "UID " + std::to_string(uid) : "";
        if (!a.silent) items += (items.empty() ? "" : " ") + ("FLAGS " + flags_of(*m));
        if (condstore_) items += (items.empty() ? "" : " ") + ("MODSEQ (" + std::to_string(m->modseq) + ")");
        out += "* " + std::to_string(seq_of(uid)) + " FETCH (" + items + ")\r\n";
    }
    reply(out);
    if (modified.empty()) return tagged("OK", cmd.name + " completed");
    // The messages that changed since UNCHANGEDSINCE, as UIDs or numbers as the command named them.
    std::vector<uint32_t> names;
    for (uint32_t uid : modified) names.push_back(cmd.uid ? uid : static_cast<uint32_t>(seq_of(uid)));
    tagged("OK", "[MODIFIED " + uid_set_text(ranges_of(names)) + "] conditional STORE failed");
}

void Session::cmd_expunge(const Command& cmd) {
    if (read_only_) return tagged("NO", "[READ-ONLY] mailbox is read-only");
    const auto& a = std::get<ExpungeArgs>(cmd.args);
    std::optional<std::vector<uint32_t>> only;
    if (a.uids) {
        only = resolve_uids(*a.uids, true);
        if (!only) return tagged("BAD", "invalid UID set");
    }
    std::vector<uint32_t> doomed;
    for (const auto& m : index_->messages())
        if (m.flags.find(store::kDeleted) != std::string::npos &&
            (!only || std::binary_search(only->begin(), only->end(), m.uid)))
            doomed.push_back(m.uid);
    if (auto r = index_->expunge(doomed); !r) {
        log::warnx("%s: EXPUNGE %s: %s", id_.c_str(), mailbox_.c_str(), r.error().what().c_str());
        return tagged("NO", "[SERVERBUG] cannot expunge");
    }
    report_changes(true);
    tagged("OK", cmd.name + " completed");
}

}  // namespace ferry::imap
