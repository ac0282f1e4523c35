// FETCH and UID FETCH of a session: items from the index cache, message bytes streamed from the file under back-pressure.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <deque>

#include "common/base/log.hpp"
#include "common/mail/mime_decode.hpp"
#include "common/mail/mime_section.hpp"
#include "common/store/maildir.hpp"
#include "imapd/session.hpp"
#include "imapd/slice.hpp"

namespace ferry::imap {

namespace {

using K = FetchItem::Kind;

constexpr size_t kChunk = 64 * 1024;          // octets read from a message file at once
constexpr size_t kBatch = 128 * 1024;         // output gathered before one write to the stream (one send)
constexpr size_t kOutputBound = 256 * 1024;   // unsent output above which FETCH stops producing
constexpr size_t kOutputLow = 64 * 1024;      // and the output it resumes at
constexpr size_t kCacheBatch = 256;           // cache values written in one Index::set_cache
// A slice of FETCH, whichever comes first: 512 KiB of output is about half a millisecond of reading
// and CRLF work here, so the one pass through the loop that each slice costs stays under 1% of the
// throughput; 2 ms bounds the slices whose messages are parsed for the cache or are mostly small
// items. Another session waits at most one slice (plus one 64 KiB chunk or one message parse).
constexpr uint64_t kSliceBytes = 512 * 1024;
constexpr auto kSliceTime = std::chrono::milliseconds(2);

// RFC 9051 date-time: "27-Nov-2026 13:45:00 +0000".
std::string internal_date(int64_t t) {
    time_t tt = static_cast<time_t>(t);
    struct tm tm;
    gmtime_r(&tt, &tm);
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

bool needs_file(K k) {
    return k == K::body_section || k == K::rfc822 || k == K::rfc822_header || k == K::rfc822_text || k == K::binary ||
           k == K::binary_size;
}

// Whether every item needs at most the whole message's CRLF size: BODY[], BODY.PEEK[], RFC822
// and RFC822.SIZE, with UID, FLAGS and MODSEQ (what a client downloading whole messages asks).
bool whole_message_only(const std::vector<FetchItem>& items) {
    for (const auto& item : items) {
        bool whole = item.kind == K::body_section && item.section.part.empty() && item.section.text == Section::Text::none;
        if (!whole && item.kind != K::rfc822 && item.kind != K::rfc822_size && item.kind != K::uid &&
            item.kind != K::flags && item.kind != K::modseq)
            return false;
    }
    return true;
}

bool sets_seen(const FetchItem& item) {
    return ((item.kind == K::body_section || item.kind == K::binary) && !item.peek) || item.kind == K::rfc822 ||
           item.kind == K::rfc822_text;
}

// Octets [offset, offset + size) of a file; fewer when it is shorter.
Result<std::string> read_range(int fd, uint64_t offset, uint64_t size) {
    std::string out;
    char buf[kChunk];
    while (out.size() < size) {
        ssize_t n = ::pread(fd, buf, std::min<uint64_t>(sizeof buf, size - out.size()), static_cast<off_t>(offset + out.size()));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("read");
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

// The CRLF form of a range, transfer-decoded (BINARY, RFC 3516).
std::string decode_range(int fd, const mail::MimeRange& r, mail::TransferEncoding enc) {
    auto raw = read_range(fd, r.offset, r.size);
    std::string crlf, out;
    CrlfConverter conv;
    conv.feed(raw ? *raw : std::string(), crlf);
    mail::TransferDecoder dec(enc);
    dec.feed(crlf, out);
    dec.finish(out);
    return out;
}

// The window of `total` octets that <start.count> selects.
std::pair<uint64_t, uint64_t> window_of(const FetchItem& item, uint64_t total) {
    if (!item.partial) return {0, total};
    auto [start, count] = *item.partial;
    return {start, start >= total ? 0 : std::min(count, total - start)};
}

}  // namespace

// Part of one message's response: text as it is, or the CRLF form of a file range through a window.
struct FetchPiece {
    std::string text;
    bool from_file = false;
    uint64_t offset = 0, size = 0;  // the raw range of the file
    uint64_t start = 0, count = 0;  // the octets of its CRLF form to write: exactly count
};

struct Session::FetchJob {
    Command cmd;
    std::vector<uint32_t> uids;
    size_t next = 0;
    bool paused = false;                    // input paused until the job ends
    uint64_t produced = 0;                  // octets handed to the stream
    std::vector<store::CacheValue> cache;   // computed, not written yet
    std::deque<FetchPiece> pieces;          // the rest of the current message's response
    std::string batch;                      // responses and message bytes gathered into one write
    std::string conv;                       // a chunk's CRLF form when a partial window cuts it
    Fd file;                                // the current message
    // Progress in the front piece when it is a file range.
    bool started = false;
    uint64_t read = 0, written = 0;
    CrlfConverter crlf;
    PartialWindow window{0, 0};

    void text(std::string_view s) {
        if (!pieces.empty() && !pieces.back().from_file) pieces.back().text += s;
        else pieces.push_back(FetchPiece{std::string(s)});
    }
};

void Session::FetchJobDelete::operator()(FetchJob* job) const { delete job; }

void Session::cmd_fetch(const Command& cmd) {
    const auto& a = std::get<FetchArgs>(cmd.args);
    if (a.vanished && !fetch_vanished(cmd, a)) return;
    // RFC 7162 section 3.1: the MODSEQ item and CHANGEDSINCE are CONDSTORE-enabling.
    if (a.changed_since || std::any_of(a.items.begin(), a.items.end(), [](const FetchItem& i) { return i.kind == FetchItem::Kind::modseq; }))
        enable_condstore();
    auto uids = resolve_uids(a.set, cmd.uid);
    if (!uids) return tagged("BAD", "invalid message sequence number");
    fetch_.reset(new FetchJob{cmd, std::move(*uids)});
    stream_.set_output_low_water(kOutputLow);
    fetch_produce();
}

// Writes responses until the command is done, the output is over its bound or the slice is spent;
// on_output_low or resume_ev_ goes on.
void Session::fetch_produce() {
    if (!fetch_) return;
    Slice slice(kSliceBytes, kSliceTime, fetch_->produced);
    while (fetch_ && !stream_.closing()) {
        FetchJob& job = *fetch_;
        if (stream_.output_pending() + job.batch.size() >= kOutputBound) fetch_flush(job);
        if (stream_.output_pending() >= kOutputBound) return fetch_yield(job);
        if (slice.spent(job.produced + job.batch.size())) {
            fetch_flush(job);
            return fetch_yield(job);
        }
        if (!job.pieces.empty()) {
            fetch_piece_step(job);
            continue;
        }
        if (job.next < job.uids.size()) {
            if (job.cache.size() >= kCacheBatch) flush_cache(job.cache);
            if (!fetch_message(job, job.uids[job.next++])) return fetch_finish("NO", "[UNKNOWN-CTE] cannot decode that part");
            continue;
        }
        return fetch_finish("OK", job.cmd.name + " completed");
    }
}

void Session::fetch_yield(FetchJob& job) {
    // The client gets no command read until the job ends: its later commands wait their turn.
    if (!job.paused) stream_.pause_input();
    job.paused = true;
    // Above the bound the stream is above its low-water mark too, so on_output_low will come.
    if (stream_.output_pending() < kOutputBound) resume_later();
}

void Session::fetch_finish(std::string_view status, const std::string& text) {
    std::unique_ptr<FetchJob, FetchJobDelete> job = std::move(fetch_);
    fetch_flush(*job);
    flush_cache(job->cache);
    tag_ = job->cmd.tag;
    tagged(std::string(status), text);
    if (!job->paused) return;  // finished inside its own command: read_commands goes on by itself
    stream_.resume_input();
    read_commands();
    track_deadline();
}

bool Session::fetch_cut(const std::string& reason) {
    search_cut(reason);
    if (!fetch_) return false;
    bool mid_message = !fetch_->pieces.empty();
    if (!mid_message) fetch_flush(*fetch_);
    log::info("%s: %s ended by %s", id_.c_str(), fetch_->cmd.name.c_str(), reason.c_str());
    flush_cache(fetch_->cache);
    fetch_.reset();
    return mid_message;
}

void Session::fetch_flush(FetchJob& job) {
    if (job.batch.empty()) return;
    job.produced += job.batch.size();
    if (job.batch.size() < kBatch / 2) {
        reply(job.batch);
        job.batch.clear();
        return;
    }
    // A full batch goes to the stream as it is (no second copy of the message bytes); the next gets its own.
    stream_.write_owned(std::move(job.batch));
    job.batch = std::string();
    job.batch.reserve(kBatch + 2 * kChunk);
}

// One chunk of the front piece.
void Session::fetch_piece_step(FetchJob& job) {
    FetchPiece& p = job.pieces.front();
    if (!p.from_file) {
        job.batch += p.text;
        job.pieces.pop_front();
        if (job.batch.size() >= kBatch) fetch_flush(job);
        return;
    }
    if (!job.started) {
        job.started = true;
        job.read = job.written = 0;
        job.crlf = CrlfConverter();
        job.window = PartialWindow(p.start, p.count);
    }
    bool end = p.count == 0 || job.read >= p.size;
    if (!end) {
        char buf[kChunk];
        size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof buf, p.size - job.read));
        ssize_t n;
        do n = ::pread(job.file.get(), buf, want, static_cast<off_t>(p.offset + job.read));
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
            log::warnx("%s: FETCH %s: message file ended early", id_.c_str(), mailbox_.c_str());
            end = true;
        } else {
            job.read += static_cast<uint64_t>(n);
            job.written += take_chunk(job, std::string_view(buf, static_cast<size_t>(n)), p.start == 0);
            end = job.window.done() || job.read >= p.size;
            if (job.batch.size() >= kBatch) fetch_flush(job);
        }
    }
    if (!end) return;
    // The literal's length was promised: a file that shrank under us is padded to it.
    if (job.written < p.count) job.batch.append(p.count - job.written, ' ');
    job.started = false;
    job.pieces.pop_front();
}

// The CRLF form of one chunk read, through the window, appended to the batch; the octets appended.
// A window that starts at 0 can cut only the end: the chunk is converted straight into the batch and cut there.
size_t Session::take_chunk(FetchJob& job, std::string_view raw, bool from_start) {
    if (from_start) {
        size_t before = job.batch.size();
        job.crlf.feed(raw, job.batch);
        std::string_view added(job.batch.data() + before, job.batch.size() - before);
        size_t keep = job.window.take(added).size();
        job.batch.resize(before + keep);
        return keep;
    }
    job.conv.clear();
    job.crlf.feed(raw, job.conv);
    std::string_view out = job.window.take(job.conv);
    job.batch += out;
    return out.size();
}

void Session::flush_cache(std::vector<store::CacheValue>& pending) {
    if (pending.empty()) return;
    // Not a MODSEQ change: an EXAMINE session writes the cache too.
    if (auto r = index_->set_cache(pending); !r)
        log::warnx("%s: cache %s: %s", id_.c_str(), mailbox_.c_str(), r.error().what().c_str());
    pending.clear();
}

// The message's info from the cache, or parsed from its file (opened into `file`) and queued for the cache.
std::optional<mail::MimePart> parse_message_file(int fd, uint64_t& size) {
    mail::MimeParser parser;
    char buf[kChunk];
    size = 0;
    for (;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(size));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::nullopt;
        if (n == 0) break;
        parser.feed(std::string_view(buf, static_cast<size_t>(n)));
        size += static_cast<uint64_t>(n);
    }
    return parser.finish();
}

std::optional<MessageInfo> Session::message_info(uint32_t uid, Fd& file, std::vector<store::CacheValue>& pending) {
    if (auto v = index_->cache(uid, kInfoCacheKey))
        if (auto info = decode_info(*v)) return info;
    if (!file.valid()) {
        auto fd = index_->open_message(uid);
        if (!fd) {
            log::info("%s: %s uid %u: %s", id_.c_str(), mailbox_.c_str(), uid, fd.error().what().c_str());
            return std::nullopt;
        }
        file = std::move(fd.value());
    }
    struct stat st;
    if (::fstat(file.get(), &st) != 0) return std::nullopt;
    uint64_t size = 0;
    auto tree = parse_message_file(file.get(), size);
    if (!tree) return std::nullopt;
    MessageInfo info = info_of(*tree, st.st_mtime, size);
    std::string value = encode_info(info);
    if (value.size() <= store::kMaxPayload - 512) pending.push_back(store::CacheValue{uid, kInfoCacheKey, std::move(value), index_->uidvalidity()});
    return info;
}

// The info a whole-message FETCH needs, from the file's name: its CRLF size is the W= that
// ferry-mda (and every writer of Dovecot's naming) puts there, trusted only when the S= beside it
// is the file's size. Spares the cache look-up and its decoding; nullopt sends the caller to
// message_info (the cache, or a parse) with the file opened into `file` when it could be.
std::optional<MessageInfo> Session::info_from_name(uint32_t uid, Fd& file) {
    auto fd = index_->open_message(uid);
    if (!fd) return std::nullopt;
    file = std::move(fd.value());
    const store::Message* m = index_->find(uid);
    if (!m || m->file.size() <= 4) return std::nullopt;
    auto name = maildir::parse_name(std::string_view(m->file).substr(4));
    struct stat st;
    if (!name || !name->size || !name->vsize || *name->vsize < *name->size || *name->vsize > 2 * *name->size ||
        ::fstat(file.get(), &st) != 0 || static_cast<uint64_t>(st.st_size) != *name->size)
        return std::nullopt;
    MessageInfo info;
    info.size = *name->size;
    info.crlf_size = *name->vsize;
    info.layout.header = mail::MimeRange{0, info.size, 0, info.crlf_size, 0};
    return info;
}

// Queues one message's response; false when a BINARY part has an unknown transfer encoding.
bool Session::fetch_message(FetchJob& job, uint32_t uid) {
    const auto& a = std::get<FetchArgs>(job.cmd.args);
    const store::Message* m = index_->find(uid);
    if (!m) return true;
    if (a.changed_since && m->modseq <= *a.changed_since) return true;  // RFC 7162 section 3.1.4.1
    bool need_info = false, need_file = false, seen = false;
    for (const auto& item : a.items) {
        need_info = need_info || (item.kind != K::flags && item.kind != K::uid && item.kind != K::modseq);
        need_file = need_file || needs_file(item.kind);
        seen = seen || sets_seen(item);
    }
    job.file.reset();
    std::optional<MessageInfo> info;
    if (need_info && need_file && whole_message_only(a.items)) info = info_from_name(uid, job.file);
    if (need_info && !info && !(info = message_info(uid, job.file, job.cache))) return true;
    if (need_file && !job.file.valid()) {
        auto fd = index_->open_message(uid);
        if (!fd) {
            log::info("%s: FETCH %s uid %u: %s", id_.c_str(), mailbox_.c_str(), uid, fd.error().what().c_str());
            return true;
        }
        job.file = std::move(fd.value());
    }
    // Unknown transfer encodings are refused before anything of this message is written.
    for (const auto& item : a.items) {
        if (item.kind != K::binary && item.kind != K::binary_size) continue;
        const mail::MimePart* p = find_part(info->layout, item.section.part);
        if (p && !item.section.part.empty() && p->children.empty() &&
            mail::transfer_encoding_of(p->transfer_encoding()) == mail::TransferEncoding::unknown)
            return false;
    }
    bool add_flags = false;
    if (seen && !read_only_ && m->flags.find(store::kSeen) == std::string::npos) {
        uint32_t u = uid;
        if (index_->store_flags({&u, 1}, store::FlagMode::add, std::string(1, store::kSeen))) add_flags = true;
        m = index_->find(uid);
        if (!m) return true;
    }
    fetch_response(job, *m, info ? &*info : nullptr, add_flags);
    return true;
}

// The response of one message into job.pieces: short items first, message bytes (literals) last,
// as Dovecot does, so the head of the response carries UID, FLAGS and RFC822.SIZE.
void Session::fetch_response(FetchJob& job, const store::Message& m, const MessageInfo* info, bool add_flags) {
    const auto& a = std::get<FetchArgs>(job.cmd.args);
    size_t seq = uids_.lower_bound(m.uid) + 1;
    std::string items;
    auto item_sep = [&] { if (!items.empty()) items += ' '; };
    bool has_uid = false, has_flags = false, has_modseq = false;
    for (const auto& item : a.items) {
        switch (item.kind) {
            case K::uid: item_sep(); items += "UID " + std::to_string(m.uid); has_uid = true; break;
            case K::flags: item_sep(); items += "FLAGS " + flags_of(m); has_flags = true; break;
            case K::modseq: item_sep(); items += "MODSEQ (" + std::to_string(m.modseq) + ")"; has_modseq = true; break;
            case K::internaldate: item_sep(); items += "INTERNALDATE " + internal_date(info->internal_date); break;
            case K::rfc822_size: item_sep(); items += "RFC822.SIZE " + std::to_string(info->crlf_size); break;
            case K::envelope: item_sep(); items += "ENVELOPE " + info->envelope; break;
            case K::bodystructure: item_sep(); items += "BODYSTRUCTURE " + info->bodystructure; break;
            case K::body: item_sep(); items += "BODY " + info->body; break;
            case K::binary_size: item_sep(); items += binary_size(job, item, *info); break;
            default: break;
        }
    }
    // UID FETCH always returns the UID; a FETCH that set \Seen returns the new flags (RFC 9051
    // section 6.4.5); CHANGEDSINCE implies MODSEQ, as does a flag change once CONDSTORE is on (RFC 7162 3.1.4).
    if (job.cmd.uid && !has_uid) { item_sep(); items += "UID " + std::to_string(m.uid); }
    if (add_flags && !has_flags) { item_sep(); items += "FLAGS " + flags_of(m); }
    if ((a.changed_since || (condstore_ && add_flags)) && !has_modseq) { item_sep(); items += "MODSEQ (" + std::to_string(m.modseq) + ")"; }
    job.text("* " + std::to_string(seq) + " FETCH (" + items);
    bool first = items.empty();
    for (const auto& item : a.items) {
        if (!needs_file(item.kind) || item.kind == K::binary_size) continue;
        job.text(first ? "" : " ");
        first = false;
        fetch_literal(job, item, *info);
    }
    job.text(")\r\n");
}

// "BINARY.SIZE[1] 1234": the decoded size of a part.
std::string Session::binary_size(FetchJob& job, const FetchItem& item, const MessageInfo& info) {
    std::string name = "BINARY.SIZE[" + section_name(item.section) + "] ";
    const mail::MimePart* p = find_part(info.layout, item.section.part);
    if (!p) return name + "0";
    if (item.section.part.empty() || !p->children.empty()) {
        auto r = mail::resolve_section(info.layout, mail::Section{item.section.part, mail::Section::Text::none, {}});
        return name + std::to_string(r ? r->crlf_size : 0);
    }
    auto enc = mail::transfer_encoding_of(p->transfer_encoding());
    if (enc == mail::TransferEncoding::identity) return name + std::to_string(p->body.crlf_size);
    return name + std::to_string(decode_range(job.file.get(), p->body, enc).size());
}

// One literal item: its name, "{n}" and its bytes (a file range, or text made here).
void Session::fetch_literal(FetchJob& job, const FetchItem& item, const MessageInfo& info) {
    using T = mail::Section::Text;
    mail::Section s{item.section.part, static_cast<T>(item.section.text), item.section.fields};
    std::string name;
    std::optional<std::string> made;  // bytes made in memory, before the partial window
    bool literal8 = false;
    switch (item.kind) {
        case K::rfc822: name = "RFC822"; s = {}; break;
        case K::rfc822_header: name = "RFC822.HEADER"; s = {{}, T::header, {}}; break;
        case K::rfc822_text: name = "RFC822.TEXT"; s = {{}, T::text, {}}; break;
        case K::binary: {
            name = "BINARY[" + section_name(item.section) + "]";
            const mail::MimePart* p = find_part(info.layout, item.section.part);
            if (!p) { made.emplace(); break; }
            if (item.section.part.empty() || !p->children.empty()) break;  // not a leaf: its bytes as they are
            auto enc = mail::transfer_encoding_of(p->transfer_encoding());
            if (enc == mail::TransferEncoding::identity) {
                literal8 = p->transfer_encoding() == "binary";
                break;
            }
            made = decode_range(job.file.get(), p->body, enc);
            break;
        }
        default: name = "BODY[" + section_name(item.section) + "]"; break;
    }
    std::optional<mail::MimeRange> range;
    if (!made) {
        if (auto r = mail::resolve_section(info.layout, s)) range = *r;
        else made.emplace();  // a part that is not there reads as empty
    }
    if (range && (s.text == T::header_fields || s.text == T::header_fields_not)) {
        auto raw = read_range(job.file.get(), range->offset, range->size);
        made = mail::filter_header_fields(raw ? *raw : std::string(), s.fields, s.text == T::header_fields_not);
    }
    uint64_t total = made ? made->size() : range->crlf_size;
    auto [start, count] = window_of(item, total);
    if (item.partial) name += "<" + std::to_string(start) + ">";
    std::string_view bytes = made ? std::string_view(*made).substr(std::min<uint64_t>(start, made->size()), count) : "";
    // A literal8 where the data holds NUL (RFC 3516 section 4.3): decoded BINARY data may.
    if (item.kind == K::binary && bytes.find('\0') != std::string_view::npos) literal8 = true;
    job.text(name + " " + (literal8 ? "~{" : "{") + std::to_string(count) + "}\r\n");
    if (made) job.text(bytes);
    else job.pieces.push_back(FetchPiece{{}, true, range->offset, range->size, start, count});
}

}  // namespace ferry::imap
