// The selected state of a session: SELECT, EXAMINE, FETCH, STORE, EXPUNGE, CLOSE and UNSELECT.
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

constexpr const char* kFlags = "(\\Answered \\Flagged \\Deleted \\Seen \\Draft)";

// Every line end as CRLF, as IMAP sends a message (Maildir stores LF).
std::string crlf(std::string_view s) {
    std::string out;
    out.reserve(s.size() + s.size() / 32);
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) out += '\r';
        out += s[i];
    }
    return out;
}

Result<std::string> read_all(int fd) {
    std::string data;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("read");
        if (n == 0) return data;
        data.append(buf, static_cast<size_t>(n));
    }
}

// RFC 9051 date-time: "27-Nov-2026 13:45:00 +0000".
std::string internal_date(time_t t) {
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[64];
    strftime(buf, sizeof buf, "\"%d-%b-%Y %H:%M:%S +0000\"", &tm);
    return buf;
}

std::string section_name(const Section& s) {
    std::string out;
    for (uint32_t p : s.part) out += (out.empty() ? "" : ".") + std::to_string(p);
    auto add = [&](const char* t) { out += (out.empty() ? "" : ".") + std::string(t); };
    switch (s.text) {
        case Section::Text::none: break;
        case Section::Text::header: add("HEADER"); break;
        case Section::Text::text: add("TEXT"); break;
        case Section::Text::mime: add("MIME"); break;
        case Section::Text::header_fields:
        case Section::Text::header_fields_not: {
            add(s.text == Section::Text::header_fields ? "HEADER.FIELDS (" : "HEADER.FIELDS.NOT (");
            for (size_t i = 0; i < s.fields.size(); ++i) out += (i ? " " : "") + s.fields[i];
            out += ')';
            break;
        }
    }
    return out;
}

void append_literal(std::string& out, std::string_view data) {
    out += '{' + std::to_string(data.size()) + "}\r\n";
    out += data;
}

}  // namespace

bool Session::selected() const { return state_ == State::selected; }

std::string Session::flags_of(const store::Message& m) const {
    std::string out;
    for (char c : m.flags)
        if (const char* f = store::imap_flag(c)) out += (out.empty() ? "" : " ") + std::string(f);
    for (uint32_t k : m.keywords)
        if (k < index_->keywords().size()) out += (out.empty() ? "" : " ") + index_->keywords()[k];
    return "(" + out + ")";
}

void Session::cmd_select(const Command& cmd) {
    const auto& a = std::get<SelectArgs>(cmd.args);
    // RFC 9051 section 6.3.2: a failed SELECT leaves no mailbox selected.
    close_mailbox(false);
    auto name = folder_name(a.mailbox);
    if (!name) return;
    if (!folder_exists(*name)) return tagged("NO", "[NONEXISTENT] no such mailbox");
    auto index = open_synced(*name);
    if (!index) {
        log::warnx("%s: SELECT %s: %s", id_.c_str(), name->c_str(), index.error().what().c_str());
        return tagged("NO", "[SERVERBUG] cannot open the mailbox");
    }
    index_ = server_.share_index(std::move(index.value()));
    read_only_ = cmd.verb == Verb::examine;
    mailbox_ = *name;
    uids_.clear();
    for (const auto& m : index_->messages()) uids_.push_back(m.uid);
    state_ = State::selected;
    modseq_seen_ = index_->highest_modseq();
    std::string r = std::string("* FLAGS ") + kFlags + "\r\n";
    r += read_only_ ? "* OK [PERMANENTFLAGS ()] read-only\r\n"
                    : std::string("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] flags permitted\r\n");
    r += "* " + std::to_string(uids_.size()) + " EXISTS\r\n* 0 RECENT\r\n";
    r += "* OK [UIDVALIDITY " + std::to_string(index_->uidvalidity()) + "] UIDs valid\r\n";
    r += "* OK [UIDNEXT " + std::to_string(index_->uidnext()) + "] predicted next UID\r\n";
    r += "* OK [HIGHESTMODSEQ " + std::to_string(index_->highest_modseq()) + "] highest\r\n";
    reply(r);
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
void Session::report_changes(bool expunges, bool sync) {
    if (auto r = sync ? index_->sync() : Result<store::SyncStats>(store::SyncStats{}); !r)
        log::warnx("%s: sync %s: %s", id_.c_str(), mailbox_.c_str(), r.error().what().c_str());
    std::string out;
    if (expunges) {
        for (size_t i = uids_.size(); i-- > 0;) {
            if (index_->find(uids_[i])) continue;
            out += "* " + std::to_string(i + 1) + " EXPUNGE\r\n";
            uids_.erase(uids_.begin() + static_cast<ptrdiff_t>(i));
        }
    }
    size_t before = uids_.size();
    uint32_t last = uids_.empty() ? 0 : uids_.back();
    for (const auto& m : index_->messages())
        if (m.uid > last) uids_.push_back(m.uid);
    if (uids_.size() != before) out += "* " + std::to_string(uids_.size()) + " EXISTS\r\n";
    // Flags another session or a Maildir reader changed since the last report.
    for (size_t i = 0; i < before; ++i) {
        const store::Message* m = index_->find(uids_[i]);
        if (m && m->modseq > modseq_seen_)
            out += "* " + std::to_string(i + 1) + " FETCH (FLAGS " + flags_of(*m) + ")\r\n";
    }
    modseq_seen_ = index_->highest_modseq();
    if (!out.empty()) reply(out);
}

// The UIDs a command's set names, in ascending order: sequence numbers through uids_.
std::optional<std::vector<uint32_t>> Session::resolve_uids(const SequenceSet& set, bool uid) {
    std::vector<uint32_t> out;
    uint32_t max = uid ? (uids_.empty() ? 0 : uids_.back()) : static_cast<uint32_t>(uids_.size());
    auto spans = resolve(set, max, uid);
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

void Session::cmd_fetch(const Command& cmd) {
    const auto& a = std::get<FetchArgs>(cmd.args);
    auto uids = resolve_uids(a.set, cmd.uid);
    if (!uids) return tagged("BAD", "invalid message sequence number");
    for (const auto& item : a.items)
        if (item.kind == FetchItem::Kind::binary || item.kind == FetchItem::Kind::binary_size ||
            item.kind == FetchItem::Kind::modseq)
            return tagged("BAD", "BINARY and MODSEQ are not supported");
    std::string out;
    for (uint32_t uid : *uids) {
        size_t seq = static_cast<size_t>(std::lower_bound(uids_.begin(), uids_.end(), uid) - uids_.begin()) + 1;
        if (!fetch_one(seq, uid, a, cmd.uid, out)) continue;
        reply(out);
        out.clear();
    }
    tagged("OK", cmd.name + " completed");
}

// One message's FETCH response into `out`; false when the message is gone.
bool Session::fetch_one(size_t seq, uint32_t uid, const FetchArgs& a, bool by_uid, std::string& out) {
    const store::Message* m = index_->find(uid);
    if (!m) return false;
    bool need_body = false, sets_seen = false;
    for (const auto& item : a.items) {
        using K = FetchItem::Kind;
        if (item.kind != K::flags && item.kind != K::uid && item.kind != K::internaldate) need_body = true;
        if ((item.kind == K::body_section && !item.peek) || item.kind == K::rfc822 || item.kind == K::rfc822_text)
            sets_seen = true;
    }
    std::string data;
    time_t mtime = 0;
    auto fd = index_->open_message(uid);
    if (!fd) {
        log::info("%s: FETCH %s uid %u: %s", id_.c_str(), mailbox_.c_str(), uid, fd.error().what().c_str());
        return false;
    }
    struct stat st;
    if (::fstat(fd->get(), &st) == 0) mtime = st.st_mtime;
    if (need_body) {
        auto r = read_all(fd->get());
        if (!r) return false;
        data = std::move(r.value());
    }
    std::optional<mail::MimePart> tree;
    auto parsed = [&]() -> const mail::MimePart& {
        if (!tree) {
            mail::MimeParser p;
            p.feed(data);
            tree.emplace(p.finish());
        }
        return *tree;
    };
    bool add_flags = false;
    if (sets_seen && !read_only_ && m->flags.find(store::kSeen) == std::string::npos) {
        uint32_t u = uid;
        if (index_->store_flags({&u, 1}, store::FlagMode::add, std::string(1, store::kSeen))) add_flags = true;
        m = index_->find(uid);
        if (!m) return false;
    }
    // Short items first, message bytes (literals) last, as Dovecot does: a client that reads the
    // response head before the first literal sees UID, FLAGS and RFC822.SIZE there.
    std::string items, literals;
    auto sep = [&] { if (!items.empty()) items += ' '; };
    auto lsep = [&] { if (!literals.empty()) literals += ' '; };
    bool has_uid = false, has_flags = false;
    for (const auto& item : a.items) {
        using K = FetchItem::Kind;
        bool literal = item.kind == K::rfc822 || item.kind == K::rfc822_header || item.kind == K::rfc822_text ||
                       item.kind == K::body_section;
        if (literal) lsep();
        else sep();
        switch (item.kind) {
            case K::uid: items += "UID " + std::to_string(uid); has_uid = true; break;
            case K::flags: items += "FLAGS " + flags_of(*m); has_flags = true; break;
            case K::internaldate: items += "INTERNALDATE " + internal_date(mtime); break;
            case K::rfc822_size: items += "RFC822.SIZE " + std::to_string(parsed().header.crlf_size + parsed().body.crlf_size); break;
            case K::envelope: items += "ENVELOPE " + mail::imap_envelope(parsed()); break;
            case K::bodystructure: items += "BODYSTRUCTURE " + mail::imap_bodystructure(parsed()); break;
            case K::body: items += "BODY " + mail::imap_body(parsed()); break;
            case K::rfc822: literals += "RFC822 "; append_literal(literals, crlf(data)); break;
            case K::rfc822_header:
                literals += "RFC822.HEADER ";
                append_literal(literals, crlf(std::string_view(data).substr(parsed().header.offset, parsed().header.size)));
                break;
            case K::rfc822_text:
                literals += "RFC822.TEXT ";
                append_literal(literals, crlf(std::string_view(data).substr(parsed().body.offset, parsed().body.size)));
                break;
            case K::body_section: {
                mail::Section s{item.section.part, static_cast<mail::Section::Text>(item.section.text), item.section.fields};
                std::string bytes;
                if (auto range = mail::resolve_section(parsed(), s)) {
                    std::string_view raw = std::string_view(data).substr(range->offset, range->size);
                    if (s.text == mail::Section::Text::header_fields || s.text == mail::Section::Text::header_fields_not)
                        bytes = mail::filter_header_fields(raw, s.fields, s.text == mail::Section::Text::header_fields_not);
                    else
                        bytes = crlf(raw);
                }
                literals += "BODY[" + section_name(item.section) + "]";
                if (item.partial) {
                    auto [start, count] = *item.partial;
                    literals += "<" + std::to_string(start) + ">";
                    bytes = start >= bytes.size() ? std::string() : bytes.substr(start, count);
                }
                literals += ' ';
                append_literal(literals, bytes);
                break;
            }
            default: break;
        }
    }
    // UID FETCH always returns the UID; a FETCH that set \Seen returns the new flags (RFC 9051 section 6.4.5).
    if (by_uid && !has_uid) { sep(); items += "UID " + std::to_string(uid); }
    if (add_flags && !has_flags) { sep(); items += "FLAGS " + flags_of(*m); }
    if (!literals.empty()) { sep(); items += literals; }
    out += "* " + std::to_string(seq) + " FETCH (" + items + ")\r\n";
    return true;
}

void Session::cmd_store(const Command& cmd) {
    const auto& a = std::get<StoreArgs>(cmd.args);
    if (read_only_) return tagged("NO", "[READ-ONLY] mailbox is read-only");
    if (a.unchanged_since) return tagged("BAD", "CONDSTORE is not supported");
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
    if (auto r = index_->store_flags(*uids, mode, letters, keywords); !r) {
        log::warnx("%s: STORE %s: %s", id_.c_str(), mailbox_.c_str(), r.error().what().c_str());
        return tagged("NO", "[SERVERBUG] cannot store the flags");
    }
    std::string out;
    modseq_seen_ = index_->highest_modseq();
    for (uint32_t uid : *uids) {
        const store::Message* m = index_->find(uid);
        if (!m || a.silent) continue;
        size_t seq = static_cast<size_t>(std::lower_bound(uids_.begin(), uids_.end(), uid) - uids_.begin()) + 1;
        out += "* " + std::to_string(seq) + " FETCH (" + (cmd.uid ? "UID " + std::to_string(uid) + " " : "") +
               "FLAGS " + flags_of(*m) + ")\r\n";
    }
    reply(out);
    tagged("OK", cmd.name + " completed");
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
