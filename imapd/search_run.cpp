// SEARCH and UID SEARCH of a session: each key of RFC 9051 section 6.4.4 tested against a message.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "common/base/log.hpp"
#include "common/mail/date.hpp"
#include "common/mail/imap_body.hpp"
#include "common/mail/mime.hpp"
#include "common/mail/mime_decode.hpp"
#include "imapd/session.hpp"
#include "imapd/slice.hpp"

namespace ferry::imap {

namespace {

using Op = SearchKey::Op;

bool needs_text(const SearchKey& k) {
    switch (k.op) {
        case Op::bcc: case Op::body: case Op::cc: case Op::from: case Op::subject: case Op::text: case Op::to:
        case Op::header: case Op::sentbefore: case Op::senton: case Op::sentsince:
            return true;
        default:
            return std::any_of(k.children.begin(), k.children.end(), needs_text);
    }
}

// Keys that read the body; the other text keys read the header only.
bool needs_body(const SearchKey& k) {
    if (k.op == Op::body || k.op == Op::text) return true;
    return std::any_of(k.children.begin(), k.children.end(), needs_body);
}

// Octets [0, size) of a message file, or what it has of them.
std::string read_head(int fd, uint64_t size) {
    std::string out;
    char buf[65536];
    while (out.size() < size) {
        ssize_t n = ::pread(fd, buf, std::min<uint64_t>(sizeof buf, size - out.size()), static_cast<off_t>(out.size()));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

// Keys answered from the cached size and internal date (no message file once cached).
bool needs_info(const SearchKey& k) {
    switch (k.op) {
        case Op::before: case Op::on: case Op::since: case Op::larger: case Op::smaller: case Op::older:
        case Op::younger:
            return true;
        default:
            return std::any_of(k.children.begin(), k.children.end(), needs_info);
    }
}

bool uses(const SearchKey& k, Op op) {
    return k.op == op || std::any_of(k.children.begin(), k.children.end(), [&](const SearchKey& c) { return uses(c, op); });
}

// RFC 4731 section 3.1 / RFC 9051 section 7.3.4: "* ESEARCH (TAG "t") [UID] MIN .. MAX .. ALL .. COUNT ..".
std::string esearch_line(const std::string& tag, bool uid, const SearchArgs& a, const std::vector<uint32_t>& hits,
                         uint64_t modseq) {
    std::string out = "* ESEARCH (TAG ";
    mail::append_imap_string(out, tag);
    out += ")";
    if (uid) out += " UID";
    if (!hits.empty()) {
        if (a.ret_min) out += " MIN " + std::to_string(hits.front());
        if (a.ret_max) out += " MAX " + std::to_string(hits.back());
        if (a.ret_all) out += " ALL " + uid_set_text(ranges_of(hits));
    }
    if (a.ret_count) out += " COUNT " + std::to_string(hits.size());
    if (!hits.empty() && modseq) out += " MODSEQ " + std::to_string(modseq);
    return out + "\r\n";
}

// The fields of a header section named `name` (case-insensitive), unfolded, encoded words decoded.
std::vector<std::string> header_values(std::string_view header, std::string_view name) {
    std::vector<std::string> out;
    bool in = false;
    size_t pos = 0;
    while (pos < header.size()) {
        size_t end = header.find('\n', pos);
        std::string_view line = header.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        pos = end == std::string_view::npos ? header.size() : end + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
            if (in) out.back() += line;
            continue;
        }
        size_t colon = line.find(':');
        in = colon != std::string_view::npos && colon == name.size() && mail::contains_ci(line.substr(0, colon), name);
        if (in) out.emplace_back(line.substr(colon + 1));
    }
    for (auto& v : out) v = mail::decode_header_value(v);
    return out;
}

// Case-insensitive in all of Unicode (simple folding), as SEARCH compares (RFC 9051 section 6.4.4).
bool has_text(std::string_view haystack, std::string_view needle) {
    return mail::utf8_fold(haystack).find(mail::utf8_fold(needle)) != std::string::npos;
}

std::string param(const mail::MimePart& p, const char* name) {
    for (const auto& x : p.params)
        if (x.name == name) return x.value;
    return "";
}

constexpr size_t kChunk = 64 * 1024;  // octets of a message file read and decoded at once

// Whether a leaf part's body, decoded, contains `needle`: read from the file, decoded and matched a
// chunk at a time, so a message of any size costs a chunk and a needle's length of text.
bool part_contains(const mail::MimePart& p, int fd, std::string_view needle) {
    mail::PartTextDecoder dec(p.encoding.value_or(""), param(p, "charset"));
    mail::Utf8Search search(needle);
    std::string text;
    char buf[kChunk];
    for (uint64_t at = 0; at < p.body.size && !search.found();) {
        ssize_t n = ::pread(fd, buf, std::min<uint64_t>(sizeof buf, p.body.size - at), static_cast<off_t>(p.body.offset + at));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        at += static_cast<uint64_t>(n);
        text.clear();
        dec.feed(std::string_view(buf, static_cast<size_t>(n)), text);
        search.feed(text);
    }
    text.clear();
    dec.finish(text);
    search.feed(text);
    return search.found();
}

// Whether a text part of the message (or of a message inside it) contains `needle`, decoded.
bool body_contains(const mail::MimePart& p, int fd, std::string_view needle) {
    if (!p.children.empty())
        return std::any_of(p.children.begin(), p.children.end(),
                           [&](const mail::MimePart& c) { return body_contains(c, fd, needle); });
    if (p.type != "text" && p.depth > 0) return false;
    return part_contains(p, fd, needle);
}

int64_t day_of(time_t t) { return static_cast<int64_t>(t) / 86400; }

// The day of the first Date: field (RFC 9051 SENTBEFORE/SENTON/SENTSINCE), or nothing.
std::optional<int64_t> sent_day(std::string_view header) {
    auto values = header_values(header, "Date");
    if (values.empty()) return std::nullopt;
    auto d = mail::parse_rfc5322_day(values.front());
    if (!d) return std::nullopt;
    return days_from_civil(Date{d->year, d->month, d->day});
}

}  // namespace

struct Session::Candidate {
    size_t seq = 0;
    const store::Message* m = nullptr;
    time_t mtime = 0;
    uint64_t size = 0;  // RFC822.SIZE
    int fd = -1;       // the message file, when a key reads the body
    std::string head;  // the message up to the end of its header, when a key needs it
    std::optional<mail::MimePart> tree;
    std::string_view header() const { return std::string_view(head).substr(tree->header.offset, tree->header.size); }
};

bool Session::search_match(const SearchKey& k, const Candidate& c) {
    auto flag = [&](char letter) { return c.m->flags.find(letter) != std::string::npos; };
    auto field = [&](std::string_view name, std::string_view needle) {
        auto values = header_values(c.header(), name);
        if (needle.empty()) return !values.empty();
        return std::any_of(values.begin(), values.end(), [&](const std::string& v) { return has_text(v, needle); });
    };
    // An address field also matches on its addresses as parsed: "<a (comment)@ b>" holds "a@b".
    auto address_field = [&](std::string_view name, std::string_view needle) {
        if (field(name, needle)) return true;
        for (const auto& v : header_values(c.header(), name))
            for (const auto& a : mail::parse_address_list(v))
                if (a.mailbox && a.host && has_text(*a.mailbox + "@" + *a.host, needle)) return true;
        return false;
    };
    switch (k.op) {
        case Op::all: return true;
        case Op::and_:
            return std::all_of(k.children.begin(), k.children.end(), [&](const SearchKey& x) { return search_match(x, c); });
        case Op::or_: return search_match(k.children[0], c) || search_match(k.children[1], c);
        case Op::not_: return !search_match(k.children[0], c);
        case Op::answered: return flag(store::kAnswered);
        case Op::deleted: return flag(store::kDeleted);
        case Op::draft: return flag(store::kDraft);
        case Op::flagged: return flag(store::kFlagged);
        case Op::seen: return flag(store::kSeen);
        case Op::unanswered: return !flag(store::kAnswered);
        case Op::undeleted: return !flag(store::kDeleted);
        case Op::undraft: return !flag(store::kDraft);
        case Op::unflagged: return !flag(store::kFlagged);
        case Op::unseen: return !flag(store::kSeen);
        case Op::recent: return is_recent(c.m->uid);
        case Op::new_: return is_recent(c.m->uid) && !flag(store::kSeen);
        case Op::old: return !is_recent(c.m->uid);
        case Op::keyword: case Op::unkeyword: {
            bool has = std::any_of(c.m->keywords.begin(), c.m->keywords.end(), [&](uint32_t id) {
                return id < index_->keywords().size() && upper(index_->keywords()[id]) == upper(k.str);
            });
            return k.op == Op::keyword ? has : !has;
        }
        case Op::bcc: return address_field("Bcc", k.str);
        case Op::cc: return address_field("Cc", k.str);
        case Op::from: return address_field("From", k.str);
        case Op::to: return address_field("To", k.str);
        case Op::subject: return field("Subject", k.str);
        case Op::header: return field(k.str, k.str2);
        case Op::body: return body_contains(*c.tree, c.fd, k.str);
        case Op::text: return has_text(mail::decode_header_value(c.header()), k.str) ||
                              body_contains(*c.tree, c.fd, k.str);
        case Op::before: return day_of(c.mtime) < days_from_civil(k.date);
        case Op::on: return day_of(c.mtime) == days_from_civil(k.date);
        case Op::since: return day_of(c.mtime) >= days_from_civil(k.date);
        case Op::larger: return c.size > k.number;
        case Op::smaller: return c.size < k.number;
        case Op::older: return ::time(nullptr) - c.mtime >= static_cast<time_t>(k.number);
        case Op::younger: return ::time(nullptr) - c.mtime <= static_cast<time_t>(k.number);
        case Op::modseq: return c.m->modseq >= k.number;
        case Op::sentbefore: case Op::senton: case Op::sentsince: {
            auto day = sent_day(c.header());
            if (!day) return false;
            int64_t want = days_from_civil(k.date);
            return k.op == Op::sentbefore ? *day < want : k.op == Op::senton ? *day == want : *day >= want;
        }
        case Op::uid: {
            std::vector<Span> saved = saved_spans(true);
            auto spans = resolve(k.set, uids_.empty() ? 0 : uids_.back(), true, &saved);
            return spans && contains(*spans, c.m->uid);
        }
        case Op::seqset: {
            std::vector<Span> saved = saved_spans(false);
            auto spans = resolve(k.set, static_cast<uint32_t>(uids_.size()), true, &saved);
            return spans && contains(*spans, static_cast<uint32_t>(c.seq));
        }
        default: return false;
    }
}

// RFC 5182 section 2.1: SAVE with MIN or MAX (and not ALL or COUNT) keeps only those.
void Session::save_result(const SearchArgs& a, const std::vector<uint32_t>& uids) {
    saved_.clear();
    if (uids.empty()) return;
    if ((a.ret_min || a.ret_max) && !a.ret_all && !a.ret_count) {
        if (a.ret_min) saved_.push_back(uids.front());
        if (a.ret_max && uids.back() != uids.front()) saved_.push_back(uids.back());
        return;
    }
    saved_ = uids;
}

// A slice of SEARCH, whichever comes first: 2 ms, or 256 messages (a header search from the cache
// takes microseconds a message; a body search reads and decodes each file, so time bounds it). Another
// session waits at most one slice plus one message.
constexpr uint64_t kSliceMessages = 256;
constexpr auto kSliceTime = std::chrono::milliseconds(2);

struct Session::SearchJob {
    Command cmd;
    SearchArgs a;
    bool with_modseq = false, text = false, body = false, info = false;
    size_t next = 0;                          // the sequence number - 1 of the next message to look at
    bool paused = false;                      // input paused until the job ends
    std::vector<store::CacheValue> pending;   // infos computed here, cached for FETCH and the next SEARCH
    std::vector<uint32_t> hits, hit_uids;
    std::vector<uint64_t> hit_modseqs;
    uint64_t top_modseq = 0;
};

void Session::SearchJobDelete::operator()(SearchJob* job) const { delete job; }

void Session::cmd_search(const Command& cmd) {
    SearchArgs a = std::get<SearchArgs>(cmd.args);
    if (rev2_ && !a.esearch) {
        // RFC 9051 section 6.4.4: an IMAP4rev2 SEARCH without RETURN is RETURN (ALL).
        a.esearch = true;
        a.ret_all = true;
    }
    if (a.charset && *a.charset != "UTF-8" && *a.charset != "US-ASCII")
        return tagged("NO", "[BADCHARSET (UTF-8 US-ASCII)] unsupported charset");
    search_.reset(new SearchJob{cmd, std::move(a)});
    SearchJob& job = *search_;
    job.with_modseq = uses(job.a.key, Op::modseq);
    if (job.with_modseq) enable_condstore();  // RFC 7162 section 3.1: a CONDSTORE-enabling command
    job.text = needs_text(job.a.key);
    job.body = needs_body(job.a.key);
    job.info = needs_info(job.a.key) || (job.text && !job.body);  // header keys find the header through the cached layout
    search_step();
}

// Looks at messages until all are seen or the slice is spent; resume_ev_ goes on. uids_ does not
// change meanwhile (no EXPUNGE is reported during SEARCH, RFC 3501 section 7.4.1); a message that
// another session expunges in between is no longer found and does not match.
void Session::search_step() {
    if (!search_) return;
    SearchJob& job = *search_;
    Slice slice(kSliceMessages, kSliceTime, job.next);
    while (job.next < uids_.size()) {
        if (slice.spent(job.next)) {
            if (!job.paused) stream_.pause_input();
            job.paused = true;
            return resume_later();
        }
        search_message(job, job.next++);
    }
    search_finish(job);
}

void Session::search_message(SearchJob& job, size_t i) {
    Candidate c;
    c.seq = i + 1;
    c.m = index_->find(uids_[i]);
    if (!c.m) return;
    Fd fd;
    std::optional<MessageInfo> mi;
    if (job.info) {
        if (!(mi = message_info(c.m->uid, fd, job.pending))) return;
        c.mtime = static_cast<time_t>(mi->internal_date);
        c.size = mi->crlf_size;
    }
    if (job.text && !fd.valid()) {
        auto opened = index_->open_message(c.m->uid);
        if (!opened) return;
        fd = std::move(opened.value());
    }
    if (job.text && !job.body) {
        c.tree.emplace(std::move(mi->layout));
    } else if (job.text) {
        // The cached layout has no charsets: the body keys parse the file again, never holding it.
        uint64_t size = 0;
        auto tree = parse_message_file(fd.get(), size);
        if (!tree) return;
        c.tree.emplace(std::move(*tree));
        c.fd = fd.get();
    }
    if (job.text) c.head = read_head(fd.get(), c.tree->header.offset + c.tree->header.size);
    if (!search_match(job.a.key, c)) return;
    job.hits.push_back(job.cmd.uid ? c.m->uid : static_cast<uint32_t>(c.seq));
    job.hit_uids.push_back(c.m->uid);
    job.hit_modseqs.push_back(c.m->modseq);
    job.top_modseq = std::max(job.top_modseq, c.m->modseq);
}

void Session::search_finish(SearchJob& job) {
    std::unique_ptr<SearchJob, SearchJobDelete> owned = std::move(search_);
    flush_cache(job.pending);
    const SearchArgs& a = job.a;
    const auto& hits = job.hits;
    uint64_t top_modseq = job.with_modseq ? job.top_modseq : 0;
    if (a.esearch && top_modseq && !a.ret_all && !a.ret_count && (a.ret_min || a.ret_max)) {
        // RFC 4731 section 3.2: with only MIN and/or MAX, the MODSEQ of the messages returned.
        top_modseq = std::max(a.ret_min ? job.hit_modseqs.front() : 0, a.ret_max ? job.hit_modseqs.back() : 0);
    }
    tag_ = job.cmd.tag;
    if (a.esearch) {
        if (a.ret_save) save_result(a, job.hit_uids);
        bool only_save = a.ret_save && !a.ret_min && !a.ret_max && !a.ret_all && !a.ret_count;
        if (!only_save) reply(esearch_line(job.cmd.tag, job.cmd.uid, a, hits, top_modseq));
        tagged("OK", job.cmd.name + " completed");
    } else {
        std::string line = "* SEARCH";
        for (uint32_t h : hits) line += " " + std::to_string(h);
        // RFC 7162 section 3.1.5: the highest MODSEQ of the messages found.
        if (top_modseq) line += " (MODSEQ " + std::to_string(top_modseq) + ")";
        reply(line + "\r\n");
        tagged("OK", job.cmd.name + " completed");
    }
    if (!job.paused) return;  // finished inside its own command: read_commands goes on by itself
    stream_.resume_input();
    read_commands();
    track_deadline();
}

void Session::search_cut(const std::string& reason) {
    if (!search_) return;
    log::info("%s: %s ended by %s", id_.c_str(), search_->cmd.name.c_str(), reason.c_str());
    flush_cache(search_->pending);
    search_.reset();
}

}  // namespace ferry::imap
