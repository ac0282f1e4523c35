// ferry-mda's durable record of the (queue id, account) pairs it committed to a Maildir: exactly-once delivery.
#include "mda/delivery_record.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <unordered_map>
#include <vector>

#include "common/base/fs.hpp"
#include "common/base/hash.hpp"
#include "common/base/log.hpp"

namespace ferry::mda {

namespace {

constexpr std::string_view kMagic = "FR1 ";
constexpr size_t kQueueIdLength = 16;     // ferry's: 13 hex digits of microseconds, 3 random
constexpr size_t kTimeDigits = 13;
constexpr size_t kMaxRecordLength = 4096;  // escaped fields of at most 64 + 3*320 + 3*255 bytes fit
constexpr time_t kPruneInterval = 3600;

bool escaped(unsigned char c) { return c <= ' ' || c == '%' || c == 0x7f; }

std::string escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (!escaped(static_cast<unsigned char>(c))) {
            out += c;
            continue;
        }
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
        out += buf;
    }
    return out;
}

std::optional<std::string> unescape(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        unsigned v = 0;
        if (i + 2 >= s.size()) return std::nullopt;
        auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
        if (ec != std::errc() || p != s.data() + i + 3) return std::nullopt;
        out += static_cast<char>(v);
        i += 2;
    }
    return out;
}

std::string hex32(uint32_t v) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", v);
    return buf;
}

// The one key of a pair in the index and among the claims.
std::string pair_key(std::string_view qid, std::string_view account) {
    return std::string(qid) + '\0' + std::string(account);
}

// The index key of a record: its pair's, or for a send the pair's and what was sent.
std::string record_key(std::string_view qid, std::string_view account, const std::string* what) {
    return what ? pair_key(qid, account) + '\0' + *what : pair_key(qid, account);
}

const char* state_word(DeliveryRecord::State s) {
    using S = DeliveryRecord::State;
    return s == S::done ? "done" : s == S::sent ? "sent" : s == S::unsent ? "unsent" : "intent";
}

std::optional<DeliveryRecord::State> state_of(std::string_view w) {
    using S = DeliveryRecord::State;
    if (w == "intent") return S::intent;
    if (w == "done") return S::done;
    if (w == "sent") return S::sent;
    if (w == "unsent") return S::unsent;
    return std::nullopt;
}

std::vector<std::string_view> split(std::string_view s) {
    std::vector<std::string_view> out;
    for (size_t pos = 0;;) {
        size_t sp = s.find(' ', pos);
        out.push_back(s.substr(pos, sp == std::string_view::npos ? sp : sp - pos));
        if (sp == std::string_view::npos) return out;
        pos = sp + 1;
    }
}

}  // namespace

std::string encode_record(const RecordLine& r) {
    std::string text = std::string(kMagic) + state_word(r.state) + " " + escape(r.qid) + " " + escape(r.account) + " " + escape(r.base);
    return text + " " + hex32(fnv1a32(text));
}

std::optional<RecordLine> decode_record(std::string_view line) {
    if (!line.starts_with(kMagic) || line.size() > kMaxRecordLength) return std::nullopt;
    size_t last = line.rfind(' ');
    if (last == std::string_view::npos || line.substr(last + 1) != hex32(fnv1a32(line.substr(0, last))))
        return std::nullopt;
    auto f = split(line.substr(kMagic.size(), last - kMagic.size()));
    auto state = f.size() == 4 ? state_of(f[0]) : std::nullopt;
    if (!state) return std::nullopt;
    RecordLine r;
    r.state = *state;
    auto qid = unescape(f[1]), account = unescape(f[2]), base = unescape(f[3]);
    if (!qid || !account || !base || qid->empty() || account->empty() || base->empty()) return std::nullopt;
    r.qid = std::move(*qid);
    r.account = std::move(*account);
    r.base = std::move(*base);
    return r;
}

// One segment file: its descriptor (O_APPEND) and an index of the pairs it holds.
struct DeliveryRecord::Segment {
    struct Slot {
        uint64_t offset = 0;  // where the pair's latest record starts
        bool done = false;
    };
    Fd fd;
    std::string path;
    uint64_t size = 0;  // bytes in the file: where the next record starts
    uint64_t used = 0;  // the LRU clock when last used
    std::unordered_map<uint64_t, Slot> index;  // fnv1a64 of pair_key; a collision is checked on disk
    // Set by a failed fdatasync and kept: the kernel may have dropped the pages it could not write,
    // so no later fdatasync of this descriptor proves the records before it are on disk.
    std::optional<Error> sync_failed;  // guarded by the record's mu_

    // Reads the file and indexes every valid record. A torn last line (no LF) gets its LF now, so
    // the next record starts on a line of its own.
    Result<void> load() {
        std::string data;
        char buf[65536];
        for (;;) {
            ssize_t n = pread(fd.get(), buf, sizeof buf, static_cast<off_t>(data.size()));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return sys_error("cannot read " + path);
            if (n == 0) break;
            data.append(buf, static_cast<size_t>(n));
        }
        size = data.size();
        for (size_t pos = 0; pos < data.size();) {
            size_t nl = data.find('\n', pos);
            if (nl == std::string::npos) break;
            index_line(std::string_view(data).substr(pos, nl - pos), pos);
            pos = nl + 1;
        }
        if (!data.empty() && data.back() != '\n') {
            log::warnx("%s: a record cut short at byte %zu is skipped", path.c_str(), data.rfind('\n') + 1);
            if (auto r = write_all(fd.get(), "\n", 1); !r) return r;
            size += 1;
        }
        return {};
    }

    // A line may begin with the rest of a torn record (or zeros a crash left): every record start
    // in it is tried.
    void index_line(std::string_view line, uint64_t offset) {
        for (size_t at = line.find(kMagic); at != std::string_view::npos; at = line.find(kMagic, at + 1)) {
            auto r = decode_record(line.substr(at));
            if (!r) continue;
            index[fnv1a64(record_key(r->qid, r->account, r->is_send() ? &r->base : nullptr))] =
                Slot{offset + at, r->state == State::done};
            return;
        }
    }

    // Whether a record is the latest of the pair (`what` null) or of one of its sends.
    static bool is_for(const RecordLine& r, std::string_view qid, std::string_view account, const std::string* what) {
        return r.qid == qid && r.account == account && r.is_send() == (what != nullptr) && (!what || r.base == *what);
    }

    // The record starting at `offset`, when it is the one asked for.
    std::optional<RecordLine> read_at(uint64_t offset, std::string_view qid, std::string_view account,
                                      const std::string* what) const {
        std::string buf(kMaxRecordLength + 1, '\0');
        ssize_t n = pread(fd.get(), buf.data(), buf.size(), static_cast<off_t>(offset));
        if (n <= 0) return std::nullopt;
        buf.resize(static_cast<size_t>(n));
        auto r = decode_record(std::string_view(buf).substr(0, buf.find('\n')));
        if (!r || !is_for(*r, qid, account, what)) return std::nullopt;
        return r;
    }

    // The latest record asked for, by reading the whole file: after a hash collision only.
    std::optional<RecordLine> scan(std::string_view qid, std::string_view account, const std::string* what) const {
        std::optional<RecordLine> found;
        std::string data(size, '\0');
        ssize_t n = pread(fd.get(), data.data(), data.size(), 0);
        if (n <= 0) return std::nullopt;
        data.resize(static_cast<size_t>(n));
        for (size_t pos = 0; pos < data.size();) {
            size_t nl = data.find('\n', pos);
            if (nl == std::string::npos) break;
            std::string_view line = std::string_view(data).substr(pos, nl - pos);
            for (size_t at = line.find(kMagic); at != std::string_view::npos; at = line.find(kMagic, at + 1)) {
                auto r = decode_record(line.substr(at));
                if (!r) continue;
                if (is_for(*r, qid, account, what)) found = std::move(r);
                break;
            }
            pos = nl + 1;
        }
        return found;
    }
};

DeliveryRecord::Claim& DeliveryRecord::Claim::operator=(Claim&& o) noexcept {
    if (this != &o) {
        Claim old(std::move(*this));
        owner_ = std::exchange(o.owner_, nullptr);
        key_ = std::move(o.key_);
    }
    return *this;
}

DeliveryRecord::Claim::~Claim() {
    if (!owner_) return;
    std::lock_guard lock(owner_->mu_);
    owner_->claimed_.erase(key_);
}

DeliveryRecord::DeliveryRecord(std::string dir, std::chrono::seconds lifetime, Fd lock)
    : dir_(std::move(dir)),
      lifetime_(lifetime),
      lock_(std::move(lock)),
      sync_(std::make_unique<GroupSync>([this] { return sync_written(); })) {}

DeliveryRecord::~DeliveryRecord() = default;

Result<std::unique_ptr<DeliveryRecord>> DeliveryRecord::open(const std::string& dir, std::chrono::seconds lifetime,
                                                            time_t now) {
    std::string path = dir + "/lock";
    Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) return sys_error("cannot open " + path);
    if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return make_error(0, "", "another ferry-mda holds the lock " + path + " of the delivery record");
        return sys_error("cannot lock " + path);
    }
    std::unique_ptr<DeliveryRecord> rec(new DeliveryRecord(dir, lifetime, std::move(fd)));
    rec->prune(now);
    return rec;
}

std::optional<int64_t> DeliveryRecord::segment_of(std::string_view qid, time_t now) const {
    if (qid.size() != kQueueIdLength) return std::nullopt;
    for (char c : qid)
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return std::nullopt;
    uint64_t usec = 0;
    std::from_chars(qid.data(), qid.data() + kTimeDigits, usec, 16);
    auto t = static_cast<int64_t>(usec / 1000000);
    if (t < static_cast<int64_t>(now) - lifetime_.count() || t > static_cast<int64_t>(now) + kFutureSlack.count())
        return std::nullopt;
    return t / 3600;
}

std::string DeliveryRecord::segment_name(int64_t segment) {
    time_t t = static_cast<time_t>(segment * 3600);
    tm parts{};
    gmtime_r(&t, &parts);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d%02d%02d%02d.rec", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                  parts.tm_hour);
    return buf;
}

Result<std::shared_ptr<DeliveryRecord::Segment>> DeliveryRecord::segment(int64_t number) {
    if (auto it = segments_.find(number); it != segments_.end()) {
        it->second->used = ++uses_;
        return it->second;
    }
    auto seg = std::make_shared<Segment>();
    seg->path = dir_ + "/" + segment_name(number);
    seg->fd.reset(::open(seg->path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (seg->fd.valid()) {
        // A new segment: its directory entry must be on disk before a record in it counts.
        if (auto r = fsync_dir(dir_); !r) return r.error();
    } else {
        if (errno != EEXIST) return sys_error("cannot create " + seg->path);
        seg->fd.reset(::open(seg->path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
        if (!seg->fd.valid()) return sys_error("cannot open " + seg->path);
        if (auto r = seg->load(); !r) return r.error();
    }
    if (segments_.size() >= kCachedSegments) {
        auto oldest = segments_.begin();
        for (auto it = segments_.begin(); it != segments_.end(); ++it)
            if (it->second->used < oldest->second->used) oldest = it;
        segments_.erase(oldest);  // a writer still holding it keeps it open until done
    }
    seg->used = ++uses_;
    segments_[number] = seg;
    return seg;
}

Result<std::optional<DeliveryRecord::Entry>> DeliveryRecord::lookup(int64_t number, std::string_view qid,
                                                                    std::string_view account) {
    auto r = find(number, qid, account, nullptr);
    if (!r) return r.error();
    if (!*r) return std::optional<Entry>();
    return std::optional<Entry>(Entry{(*r)->state, (*r)->base});
}

Result<std::optional<bool>> DeliveryRecord::send_outcome(int64_t number, std::string_view qid, std::string_view account,
                                                         std::string_view what) {
    std::string w(what);
    auto r = find(number, qid, account, &w);
    if (!r) return r.error();
    if (!*r) return std::optional<bool>();
    return std::optional<bool>((*r)->state == State::sent);
}

Result<void> DeliveryRecord::sent(int64_t number, std::string_view qid, std::string_view account, std::string_view what,
                                  bool ok) {
    RecordLine line{ok ? State::sent : State::unsent, std::string(qid), std::string(account), std::string(what)};
    std::string text = encode_record(line) + "\n";
    std::pair<uint64_t, size_t> at[] = {{fnv1a64(record_key(qid, account, &line.base)), 0}};
    std::shared_ptr<Segment> seg;
    if (auto r = append(number, text, at, false, &seg); !r) return r;
    if (fdatasync(seg->fd.get()) != 0) return sys_error("cannot sync " + seg->path);
    return {};
}

Result<std::optional<RecordLine>> DeliveryRecord::find(int64_t number, std::string_view qid, std::string_view account,
                                                       const std::string* what) {
    std::shared_ptr<Segment> seg;
    std::optional<Segment::Slot> slot;
    {
        std::lock_guard lock(mu_);
        std::string path = dir_ + "/" + segment_name(number);
        if (!segments_.count(number) && access(path.c_str(), F_OK) != 0) {
            if (errno == ENOENT) return std::optional<RecordLine>();
            return sys_error("cannot look at " + path);
        }
        auto s = segment(number);
        if (!s) return s.error();
        seg = *s;
        auto it = seg->index.find(fnv1a64(record_key(qid, account, what)));
        if (it == seg->index.end()) return std::optional<RecordLine>();
        slot = it->second;
    }
    auto r = seg->read_at(slot->offset, qid, account, what);
    if (!r) r = seg->scan(qid, account, what);  // another pair with the same hash
    return r;
}

// Appends `text` (whole records) to a segment and indexes the records at their offsets in it.
Result<void> DeliveryRecord::append(int64_t number, const std::string& text,
                                    std::span<const std::pair<uint64_t, size_t>> at, bool done,
                                    std::shared_ptr<Segment>* written) {
    std::lock_guard lock(mu_);
    auto s = segment(number);
    if (!s) return s.error();
    auto seg = *s;
    if (auto r = write_all(seg->fd.get(), text.data(), text.size()); !r) {
        segments_.erase(number);  // what reached the file is read again (and a torn end ended) next time
        return r;
    }
    for (auto [hash, offset] : at) seg->index[hash] = Segment::Slot{seg->size + offset, done};
    seg->size += text.size();
    if (written) *written = seg;
    return {};
}

Result<DeliveryRecord::Pending> DeliveryRecord::write_intents(int64_t number, std::string_view qid,
                                                             std::span<const Intent> items, time_t now) {
    if (items.empty()) return Pending{};
    std::string text;
    std::vector<std::pair<uint64_t, size_t>> at;
    for (const auto& item : items) {
        at.emplace_back(fnv1a64(pair_key(qid, item.account)), text.size());
        text += encode_record({State::intent, std::string(qid), item.account, item.base}) + "\n";
    }
    Pending pending;
    if (auto r = append(number, text, at, false, &pending.segment); !r) return r.error();
    {
        std::lock_guard lock(mu_);
        if (std::find(unsynced_.begin(), unsynced_.end(), pending.segment) == unsynced_.end())
            unsynced_.push_back(pending.segment);
    }
    // After the append is listed: the sync that answers this request takes it.
    pending.ticket = sync_->request();
    bool due = false;
    {
        std::lock_guard lock(mu_);
        due = now - pruned_ >= kPruneInterval;
    }
    if (due) prune(now);
    return pending;
}

Result<void> DeliveryRecord::wait(const Pending& pending) {
    if (!pending.segment) return {};  // nothing was written
    auto synced = sync_->wait(pending.ticket);
    std::lock_guard lock(mu_);
    if (pending.segment->sync_failed) return *pending.segment->sync_failed;
    return synced;
}

Result<void> DeliveryRecord::intend(int64_t number, std::string_view qid, std::span<const Intent> items, time_t now) {
    auto pending = write_intents(number, qid, items, now);
    if (!pending) return pending.error();
    return wait(*pending);
}

// Outside the lock, so that transactions append meanwhile (and join the next sync).
Result<void> DeliveryRecord::sync_written() {
    std::vector<std::shared_ptr<Segment>> segments;
    {
        std::lock_guard lock(mu_);
        segments.swap(unsynced_);
    }
    Result<void> outcome;
    for (const auto& seg : segments) {
        if (fdatasync(seg->fd.get()) == 0) continue;
        Error e = sys_error("cannot sync " + seg->path);
        std::lock_guard lock(mu_);
        seg->sync_failed = e;
        // Appends go to the file through a new descriptor from now on (and its records are read again).
        for (auto it = segments_.begin(); it != segments_.end(); ++it)
            if (it->second == seg) {
                segments_.erase(it);
                break;
            }
        if (outcome) outcome = e;
    }
    return outcome;
}

Result<void> DeliveryRecord::done(int64_t number, std::string_view qid, std::string_view account,
                                  std::string_view base) {
    std::string text = encode_record({State::done, std::string(qid), std::string(account), std::string(base)}) + "\n";
    std::pair<uint64_t, size_t> at[] = {{fnv1a64(pair_key(qid, account)), 0}};
    return append(number, text, at, true, nullptr);
}

size_t DeliveryRecord::prune(time_t now) {
    std::lock_guard lock(mu_);
    pruned_ = now;
    std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir_.c_str()), closedir);
    if (!d) return 0;
    size_t removed = 0;
    while (dirent* de = readdir(d.get())) {
        std::string_view name = de->d_name;
        if (name.size() != 14 || !name.ends_with(".rec")) continue;
        tm parts{};
        if (std::sscanf(de->d_name, "%4d%2d%2d%2d.rec", &parts.tm_year, &parts.tm_mon, &parts.tm_mday,
                        &parts.tm_hour) != 4)
            continue;
        parts.tm_year -= 1900;
        parts.tm_mon -= 1;
        int64_t number = static_cast<int64_t>(timegm(&parts)) / 3600;
        if ((number + 1) * 3600 + lifetime_.count() >= static_cast<int64_t>(now)) continue;
        segments_.erase(number);
        if (unlink((dir_ + "/" + de->d_name).c_str()) == 0) ++removed;
    }
    if (removed) log::info("removed %zu delivery record segments older than mda_delivery_record_lifetime", removed);
    return removed;
}

DeliveryRecord::Claim DeliveryRecord::claim(std::string_view qid, std::string_view account) {
    Claim c;
    std::string key = pair_key(qid, account);
    std::lock_guard lock(mu_);
    if (!claimed_.insert(key).second) return c;
    c.owner_ = this;
    c.key_ = std::move(key);
    return c;
}

}  // namespace ferry::mda
