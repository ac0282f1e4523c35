// The per-folder mailbox index beside a Maildir (ferry-mailstore(5)): UIDs, flags, keywords, MODSEQ; its cache file.
#include "common/store/index.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <iterator>
#include <memory>

#include "common/base/fs.hpp"
#include "common/base/log.hpp"
#include "common/store/maildir.hpp"

namespace ferry::store {

namespace {

constexpr size_t kTailWindow = 4096;  // append_delivered reads this much of the end of the index

std::function<void(const char*)>& pause_hook() {
    static std::function<void(const char*)> hook;
    return hook;
}

void pause_at(const char* point) {
    if (pause_hook()) pause_hook()(point);
}

// A flock held until destroyed; the kernel drops it too when the holder dies.
class FlockGuard {
public:
    static Result<FlockGuard> take(int fd, int op) {
        while (flock(fd, op) != 0) {
            if (errno != EINTR) return sys_error("cannot lock the mailbox index");
        }
        return FlockGuard(fd);
    }
    FlockGuard(FlockGuard&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    FlockGuard& operator=(FlockGuard&&) = delete;
    ~FlockGuard() {
        if (fd_ >= 0) flock(fd_, LOCK_UN);
    }

private:
    explicit FlockGuard(int fd) : fd_(fd) {}
    int fd_;
};

Result<Fd> open_lock_file(const std::string& maildir) {
    std::string path = maildir + "/" + kIndexLockFile;
    Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) return sys_error("cannot open " + path);
    return fd;
}

// ferry-mda appends its A records without a sync (ferry-mailstore(5), DURABILITY). While it holds
// the exclusive lock it writes this mark into the lock file: the index file's inode and the offset
// of the first record that may not be on disk yet. A reader that reads past the offset fdatasyncs
// the index before it uses what it read, and then clears the mark. The mark lives in the page
// cache only: after a crash whatever the index holds was read from the disk, so a mark lost then
// loses nothing, and a stale one costs one needless sync.
struct UnsyncedMark {
    uint64_t ino = 0;
    uint64_t offset = 0;
};
constexpr size_t kMarkSize = 43;  // "unsynced " 16 hex " " 16 hex "\n"

std::optional<UnsyncedMark> read_mark(int lock_fd) {
    char buf[kMarkSize];
    ssize_t n = pread(lock_fd, buf, sizeof buf, 0);
    if (n != static_cast<ssize_t>(kMarkSize) || std::memcmp(buf, "unsynced ", 9) != 0 || buf[25] != ' ' ||
        buf[42] != '\n')
        return std::nullopt;
    auto hex = [](const char* p, uint64_t& out) {
        out = 0;
        for (int i = 0; i < 16; ++i) {
            char c = p[i];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) return false;
            out = out << 4 | static_cast<uint64_t>(d);
        }
        return true;
    };
    UnsyncedMark m;
    if (!hex(buf + 9, m.ino) || !hex(buf + 26, m.offset)) return std::nullopt;
    return m;
}

bool write_mark(int lock_fd, UnsyncedMark m) {
    char buf[kMarkSize + 1];
    std::snprintf(buf, sizeof buf, "unsynced %016llx %016llx\n", static_cast<unsigned long long>(m.ino),
                  static_cast<unsigned long long>(m.offset));
    return pwrite(lock_fd, buf, kMarkSize, 0) == static_cast<ssize_t>(kMarkSize);
}

// Whether the bytes from the first NUL on are all NUL: the end of a file whose last write never
// reached the disk (a file system that shows such blocks as zeros after a crash). A record holds no NUL.
bool nul_tail(std::string_view rest) {
    size_t z = rest.find('\0');
    return z != std::string_view::npos && rest.find_first_not_of('\0', z) == std::string_view::npos;
}

Result<std::string> read_range(int fd, uint64_t from, uint64_t to) {
    std::string data(static_cast<size_t>(to - from), '\0');
    size_t got = 0;
    while (got < data.size()) {
        ssize_t n = pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(from + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("cannot read the mailbox index");
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    data.resize(got);
    return data;
}

Result<void> pwrite_all(int fd, std::string_view data, uint64_t at) {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(at + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("cannot write the mailbox index");
        done += static_cast<size_t>(n);
    }
    return {};
}

// Letters only, sorted, each once: the form the index keeps (other bytes in a name's info are kept
// in the name, not here).
std::string normal_flags(std::string_view f) {
    std::string out;
    for (char c : f)
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) out += c;
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

struct Seen {
    std::string file;   // "new/<name>" or "cur/<name>"
    std::string flags;  // normal_flags of the info
};

// Every message name in new/ then cur/ by base name; a name in cur/ wins over one in new/ (moved
// during the scan).
std::unordered_map<std::string, Seen> scan_maildir(const std::string& maildir) {
    std::unordered_map<std::string, Seen> out;
    for (const char* sub : {"new", "cur"}) {
        std::string dir = maildir + "/" + sub;
        std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
        if (!d) continue;
        while (dirent* de = readdir(d.get())) {
            if (de->d_name[0] == '.') continue;
            auto info = maildir::parse_name(de->d_name);
            if (!info) continue;
            out[info->base] = Seen{std::string(sub) + "/" + de->d_name, info->has_info ? normal_flags(info->flags) : ""};
        }
    }
    return out;
}

}  // namespace

// Records of one change, with the counters each carries.
struct RecordBatch {
    uint32_t uidnext;
    uint64_t modseq;
    std::vector<Record> recs;

    Record& push(RecordType t) {
        Record& r = recs.emplace_back();
        r.type = t;
        return r;
    }
    void seal(Record& r) {
        r.uidnext = uidnext;
        r.highest_modseq = modseq;
    }
    void append(const std::string& base, const std::string& flags, std::vector<uint32_t> kws) {
        Record& r = push(RecordType::append);
        r.uid = uidnext++;
        r.modseq = ++modseq;
        r.base = base;
        r.flags = flags;
        r.keywords = std::move(kws);
        seal(r);
    }
    void flags(uint32_t uid, const std::string& flags, std::vector<uint32_t> kws) {
        Record& r = push(RecordType::flags);
        r.uid = uid;
        r.modseq = ++modseq;
        r.flags = flags;
        r.keywords = std::move(kws);
        seal(r);
    }
    void expunge(uint32_t uid) {
        Record& r = push(RecordType::expunge);
        r.uid = uid;
        r.modseq = ++modseq;
        seal(r);
    }
    void vanished(const ExpungeLog& log) {
        auto put = [&](uint32_t lo, uint32_t hi, uint64_t ms) {
            Record& r = push(RecordType::vanished);
            r.uid = lo;
            r.uid_last = hi;
            r.modseq = ms;
            seal(r);
        };
        if (log.floor() > 0) put(0, 0, log.floor());
        for (const auto& x : log.ranges()) put(x.lo, x.hi, x.modseq);
    }
    void recent(uint32_t upto) {
        Record& r = push(RecordType::recent);
        r.uid = upto;
        seal(r);
    }
    void keyword(uint32_t id, const std::string& name) {
        Record& r = push(RecordType::keyword);
        r.keyword_id = id;
        r.key = name;
        seal(r);
    }
};

namespace {

Error damaged(const std::string& why) { return make_error(0, "", "mailbox index damaged", why); }

std::string combine_flags(const std::string& old, FlagMode mode, std::string_view letters) {
    std::string given = normal_flags(letters);
    std::string out;
    if (mode == FlagMode::replace) {
        // Only what IMAP can set is replaced; 'P' and Dovecot's keyword letters stay.
        for (char c : old)
            if (std::string_view("DFRST").find(c) == std::string_view::npos) out += c;
        out += given;
    } else if (mode == FlagMode::add) {
        out = old + given;
    } else {
        for (char c : old)
            if (given.find(c) == std::string::npos) out += c;
    }
    return normal_flags(out);
}

}  // namespace

void set_pause_hook(std::function<void(const char*)> hook) { pause_hook() = std::move(hook); }

char flag_letter(std::string_view f) {
    static constexpr std::pair<const char*, char> kMap[] = {
        {"\\Seen", kSeen}, {"\\Answered", kAnswered}, {"\\Flagged", kFlagged}, {"\\Deleted", kDeleted}, {"\\Draft", kDraft}};
    for (auto& [name, letter] : kMap)
        if (f.size() == std::strlen(name) && strncasecmp(f.data(), name, f.size()) == 0) return letter;
    return '\0';
}

const char* imap_flag(char letter) {
    switch (letter) {
    case kSeen: return "\\Seen";
    case kAnswered: return "\\Answered";
    case kFlagged: return "\\Flagged";
    case kDeleted: return "\\Deleted";
    case kDraft: return "\\Draft";
    default: return nullptr;
    }
}

Result<Index> Index::open(const std::string& maildir, uint32_t uidvalidity_above) {
    if (auto r = maildir::ensure(maildir); !r) return r.error();
    Index ix;
    ix.maildir_ = maildir;
    ix.cache_ = CacheFile(maildir);
    ix.uidvalidity_above_ = uidvalidity_above;
    auto lock = open_lock_file(maildir);
    if (!lock) return lock.error();
    ix.lock_fd_ = std::move(*lock);
    if (auto r = ix.refresh(); !r) return r.error();
    return ix;
}

Result<void> Index::refresh() {
    cache_current_ = false;
    {
        auto g = FlockGuard::take(lock_fd_.get(), LOCK_SH);
        if (!g) return g.error();
        damaged_ = false;
        if (auto r = read_new(false); !r) return r;
        if (!damaged_ && old_cache_records_ == 0) return {};
    }
    // A missing file, a torn tail or a damaged record: the repair needs the exclusive lock. An index
    // that still holds cache records (from before the cache file) is compacted without them.
    auto g = FlockGuard::take(lock_fd_.get(), LOCK_EX);
    if (!g) return g.error();
    if (auto r = read_new(true); !r) return r;
    if (old_cache_records_ == 0) return {};
    log::info("%s/%s: moving to a separate cache file (cached values are computed again)", maildir_.c_str(), kIndexFile);
    return write_snapshot(uidvalidity_, false);
}

Result<void> Index::reset_from_start() {
    std::unordered_map<std::string, std::string> files;
    for (auto& m : messages_)
        if (!m.file.empty()) files.emplace(m.base, std::move(m.file));
    messages_.clear();
    by_base_.clear();
    keywords_.clear();
    offset_ = 0;
    records_ = 0;
    old_cache_records_ = 0;
    expunged_.clear();
    recent_upto_ = 0;
    last_uid_ = 0;
    uidnext_ = 1;
    highest_modseq_ = 0;
    uidvalidity_ = 0;
    durable_to_ = 0;
    sync_failed_.clear();  // a new file: written and synced whole by whoever replaced the old one
    carried_files_ = std::move(files);
    return {};
}

uint64_t Index::make_durable(uint64_t size) {
    if (size <= durable_to_) return size;
    if (!sync_failed_.empty()) return sync_failed_at_;
    auto mark = read_mark(lock_fd_.get());
    if (!mark || mark->ino != ino_ || mark->offset >= size) {
        durable_to_ = size;  // every record up to here was synced by its writer (or survived a crash)
        return size;
    }
    pause_at("index-reader-sync");
    if (fdatasync(file_.get()) == 0) {
        durable_to_ = size;
        // Under either lock no writer appends, so every record the mark spoke of is on disk now.
        (void)ftruncate(lock_fd_.get(), 0);
        return size;
    }
    // This descriptor reports the error once: a later fdatasync could succeed without the pages.
    sync_failed_ = std::strerror(errno);
    sync_failed_at_ = std::max(mark->offset, offset_);
    return sync_failed_at_;
}

Result<void> Index::read_new(bool writer) {
    std::string path = maildir_ + "/" + kIndexFile;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) return sys_error("cannot stat " + path);
        if (!writer) {
            damaged_ = true;
            return {};
        }
        if (auto r = write_snapshot(next_uidvalidity(), false); !r) return r;
        if (::stat(path.c_str(), &st) != 0) return sys_error("cannot stat " + path);
    }
    if (!file_.valid() || st.st_ino != ino_) {
        Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
        if (!fd.valid()) return sys_error("cannot open " + path);
        struct stat fst;
        if (fstat(fd.get(), &fst) != 0) return sys_error("cannot stat " + path);
        file_ = std::move(fd);
        ino_ = fst.st_ino;
        (void)reset_from_start();
    }
    struct stat fst;
    if (fstat(file_.get(), &fst) != 0) return sys_error("cannot stat " + path);
    uint64_t size = static_cast<uint64_t>(fst.st_size);
    if (size <= offset_) return {};
    // Records past a failed sync could be lost with UIDs some reader showed: a writer rebuilds from
    // the records before them (a new UIDVALIDITY; the next sync numbers their messages again).
    uint64_t usable = make_durable(size);
    if (usable < size && !writer) {
        damaged_ = true;
        return {};
    }
    auto data = read_range(file_.get(), offset_, usable);
    if (!data) return data.error();
    std::string_view rest(*data);
    while (!rest.empty()) {
        DecodeResult d = decode(rest);
        std::string why = d.why;
        if (d.status == Decoded::ok) {
            if (auto r = apply(d.record); r) {
                offset_ += d.used;
                ++records_;
                rest.remove_prefix(d.used);
                continue;
            } else {
                why = r.error().what();
                d.status = Decoded::bad;
            }
        }
        if (!writer) {
            damaged_ = true;
            return {};
        }
        if ((d.status == Decoded::incomplete || nul_tail(rest)) && offset_ > 0) {
            // A writer died in the middle of its write, or a crash came before an unsynced append
            // reached the disk: nobody was told of that record (readers sync before they tell).
            log::warnx("%s: cutting a torn record at offset %llu", path.c_str(), static_cast<unsigned long long>(offset_));
            if (ftruncate(file_.get(), static_cast<off_t>(offset_)) != 0 || fdatasync(file_.get()) != 0)
                return sys_error("cannot truncate " + path);
            durable_to_ = offset_;
            return {};
        }
        return rebuild(d.status == Decoded::incomplete ? "torn header record" : why);
    }
    carried_files_.clear();
    if (usable < size) {
        std::string why = "cannot sync the index: " + sync_failed_;
        sync_failed_.clear();
        return rebuild(why);
    }
    return {};
}

uint32_t Index::next_uidvalidity() const {
    auto now = static_cast<uint32_t>(std::time(nullptr));
    return std::max({now, uidvalidity_ + 1, uidvalidity_above_ + 1});
}

Result<void> Index::rebuild(const std::string& why) {
    // Records after a damaged one are lost, so UIDs given there could come again: a new
    // UIDVALIDITY tells every client to forget the old ones (RFC 9051 section 2.3.1.1).
    log::warnx("%s/%s: %s; rebuilding with a new UIDVALIDITY", maildir_.c_str(), kIndexFile, why.c_str());
    return write_snapshot(next_uidvalidity(), true);
}

Result<void> Index::apply(const Record& r) {
    if ((records_ == 0) != (r.type == RecordType::header)) return damaged("the header record is not first");
    if (r.uidnext < uidnext_ || r.highest_modseq < highest_modseq_) return damaged("counters go back");
    switch (r.type) {
    case RecordType::header: uidvalidity_ = r.uidvalidity; break;
    case RecordType::keyword:
        if (r.keyword_id == keywords_.size()) keywords_.push_back(r.key);
        else if (r.keyword_id > keywords_.size() || keywords_[r.keyword_id] != r.key) return damaged("keyword ids out of order");
        break;
    case RecordType::append: {
        if (r.uid <= last_uid_) return damaged("UIDs not ascending");
        for (uint32_t k : r.keywords)
            if (k >= keywords_.size()) return damaged("unknown keyword id");
        last_uid_ = r.uid;
        if (by_base_.count(r.base)) break;  // named twice (a sync and ferry-mda raced): the UID stays unused
        Message m{r.uid, r.modseq, r.base, r.flags, r.keywords, {}};
        if (auto it = carried_files_.find(r.base); it != carried_files_.end()) m.file = it->second;
        by_base_.emplace(r.base, r.uid);
        messages_.push_back(std::move(m));
        break;
    }
    case RecordType::flags:
        for (uint32_t k : r.keywords)
            if (k >= keywords_.size()) return damaged("unknown keyword id");
        if (Message* m = find_mut(r.uid)) {
            m->flags = r.flags;
            m->keywords = r.keywords;
            m->modseq = r.modseq;
        }
        break;
    case RecordType::recent: recent_upto_ = std::max(recent_upto_, r.uid); break;
    case RecordType::vanished:
        if (r.uid == 0) expunged_.set_floor(r.modseq);
        else expunged_.add_range({r.uid, r.uid_last, r.modseq});
        break;
    case RecordType::expunge:
        expunged_.add(r.uid, r.modseq);
        if (Message* m = find_mut(r.uid)) {
            by_base_.erase(m->base);
            messages_.erase(messages_.begin() + (m - messages_.data()));
        }
        break;
    case RecordType::cache: ++old_cache_records_; break;  // the cache file holds these now
    }
    uidnext_ = r.uidnext;
    highest_modseq_ = r.highest_modseq;
    return {};
}

Message* Index::find_mut(uint32_t uid) {
    auto it = std::lower_bound(messages_.begin(), messages_.end(), uid, [](const Message& m, uint32_t u) { return m.uid < u; });
    return it != messages_.end() && it->uid == uid ? &*it : nullptr;
}

const Message* Index::find(uint32_t uid) const { return const_cast<Index*>(this)->find_mut(uid); }

Result<void> Index::append_records(std::vector<Record>& recs, bool durable) {
    if (recs.empty()) return {};
    std::string buf;
    for (const auto& r : recs) buf += encode(r);
    if (auto w = pwrite_all(file_.get(), buf, offset_); !w) {
        (void)ftruncate(file_.get(), static_cast<off_t>(offset_));  // leave no half record behind
        return w;
    }
    if (durable && fdatasync(file_.get()) != 0) return sys_error("cannot sync the mailbox index");
    if (durable) durable_to_ = offset_ + buf.size();
    for (const auto& r : recs) {
        if (auto a = apply(r); !a) log::panic("mailbox index: own record refused: %s", a.error().what().c_str());
        ++records_;
    }
    offset_ += buf.size();
    return compact_if_due();
}

Result<void> Index::write_snapshot(uint32_t uidvalidity, bool renumber) {
    RecordBatch b{uidnext_, highest_modseq_, {}};
    if (renumber) {
        b.uidnext = static_cast<uint32_t>(messages_.size()) + 1;
        b.modseq = messages_.size();
    }
    Record& h = b.push(RecordType::header);
    h.uidvalidity = uidvalidity;
    b.seal(h);
    for (size_t i = 0; i < keywords_.size(); ++i) b.keyword(static_cast<uint32_t>(i), keywords_[i]);
    // A new UIDVALIDITY starts a new UID space: what was expunged in the old one is no news.
    if (!renumber) b.vanished(expunged_);
    if (!renumber && recent_upto_ > 0) b.recent(recent_upto_);
    uint32_t n = 0;
    for (const auto& m : messages_) {
        Record& r = b.push(RecordType::append);
        ++n;
        r.uid = renumber ? n : m.uid;
        r.modseq = renumber ? n : m.modseq;
        r.base = m.base;
        r.flags = m.flags;
        r.keywords = m.keywords;
        b.seal(r);
    }
    std::string data;
    for (const auto& r : b.recs) data += encode(r);
    if (auto w = write_file_durably(maildir_ + "/" + kIndexFile, data, 0600); !w) return w;
    // Read it back as any other process will: the state is what the new file says.
    file_.reset();
    ino_ = 0;
    return read_new(true);
}

Result<void> Index::compact_if_due() {
    size_t live = 1 + keywords_.size() + messages_.size() + expunged_.ranges().size();
    if (records_ <= 2 * live + 1000) return {};
    return write_snapshot(uidvalidity_, false);
}

Result<void> Index::compact() {
    auto g = FlockGuard::take(lock_fd_.get(), LOCK_EX);
    if (!g) return g.error();
    if (auto r = read_new(true); !r) return r;
    return write_snapshot(uidvalidity_, false);
}

std::optional<Index::DirStamp> Index::dir_stamp() const {
    struct stat n, c, ix;
    if (::stat((maildir_ + "/new").c_str(), &n) != 0 || ::stat((maildir_ + "/cur").c_str(), &c) != 0 ||
        ::fstat(file_.get(), &ix) != 0)
        return std::nullopt;
    auto ns = [](const struct stat& st) { return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec; };
    return DirStamp{n.st_ino, c.st_ino, ix.st_ino, ns(n), ns(c)};
}

constexpr int kSettleSeconds = 2;

Result<SyncStats> Index::sync() {
    cache_current_ = false;
    auto g = FlockGuard::take(lock_fd_.get(), LOCK_EX);
    if (!g) return g.error();
    if (auto r = read_new(true); !r) return r.error();
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    auto stamp = dir_stamp();
    if (stamp && synced_stamp_ && *stamp == *synced_stamp_) return SyncStats{};
    synced_stamp_.reset();
    auto stats = full_sync();
    if (!stats || !stamp) return stats;
    // A change within the clock's granularity after the stamp could leave an mtime as it was: only
    // mtimes older than that (two seconds, for file systems with coarse times) are trusted.
    int64_t settled = int64_t(now.tv_sec - kSettleSeconds) * 1000000000 + now.tv_nsec;
    if (stamp->new_mtime_ns < settled && stamp->cur_mtime_ns < settled) synced_stamp_ = stamp;
    return stats;
}

Result<SyncStats> Index::full_sync() {
    auto seen = scan_maildir(maildir_);
    bool missing = std::any_of(messages_.begin(), messages_.end(), [&](const Message& m) { return !seen.count(m.base); });
    if (missing) {
        // readdir may miss a name renamed during the scan (a flag change by mutt): look twice
        // before calling a message gone.
        for (auto& [base, s] : scan_maildir(maildir_)) seen.try_emplace(base, std::move(s));
    }
    SyncStats stats;
    RecordBatch b{uidnext_, highest_modseq_, {}};
    for (auto& m : messages_) {
        auto it = seen.find(m.base);
        if (it == seen.end()) {
            b.expunge(m.uid);
            ++stats.expunged;
            continue;
        }
        m.file = it->second.file;
        if (it->second.flags != m.flags) {
            b.flags(m.uid, it->second.flags, m.keywords);
            ++stats.changed;
        }
    }
    struct Fresh {
        int64_t mtime_ns;  // orders one second's deliveries; names break a tie within one mtime tick
        std::string base;
        const Seen* seen;
    };
    std::vector<Fresh> fresh;
    for (const auto& [base, s] : seen) {
        if (by_base_.count(base)) continue;
        struct stat st;
        int64_t mtime_ns = 0;
        if (::stat((maildir_ + "/" + s.file).c_str(), &st) == 0)
            mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        fresh.push_back({mtime_ns, base, &s});
    }
    std::sort(fresh.begin(), fresh.end(), [](const Fresh& a, const Fresh& c) {
        return a.mtime_ns != c.mtime_ns ? a.mtime_ns < c.mtime_ns : maildir::made_before(a.base, c.base);
    });
    for (const auto& f : fresh) b.append(f.base, f.seen->flags, {});
    stats.added = fresh.size();
    if (auto r = append_records(b.recs, true); !r) return r.error();
    for (const auto& f : fresh)
        if (auto it = by_base_.find(f.base); it != by_base_.end()) find_mut(it->second)->file = f.seen->file;
    return stats;
}

Result<std::vector<uint32_t>> Index::add(std::span<const std::string> names) {
    auto g = FlockGuard::take(lock_fd_.get(), LOCK_EX);
    if (!g) return g.error();
    if (auto r = read_new(true); !r) return r.error();
    RecordBatch b{uidnext_, highest_modseq_, {}};
    std::vector<uint32_t> uids;
    std::unordered_map<std::string, uint32_t> batch_bases;
    for (const auto& name : names) {
        auto info = maildir::parse_name(name);
        if (!info) return info.error();
        if (auto it = by_base_.find(info->base); it != by_base_.end()) {
            uids.push_back(it->second);
        } else if (auto bt = batch_bases.find(info->base); bt != batch_bases.end()) {
            uids.push_back(bt->second);
        } else {
            batch_bases.emplace(info->base, b.uidnext);
            uids.push_back(b.uidnext);
            b.append(info->base, info->has_info ? normal_flags(info->flags) : "", {});
        }
    }
    if (auto r = append_records(b.recs, true); !r) return r.error();
    return uids;
}

Result<uint32_t> Index::add(const std::string& name) {
    auto r = add(std::span<const std::string>(&name, 1));
    if (!r) return r.error();
    return r->front();
}

Result<uint32_t> Index::keyword_id(const std::string& name, std::vector<std::string>& pending, RecordBatch& b) {
    for (size_t i = 0; i < keywords_.size(); ++i)
        if (strcasecmp(keywords_[i].c_str(), name.c_str()) == 0) return static_cast<uint32_t>(i);
    for (size_t i = 0; i < pending.size(); ++i)
        if (strcasecmp(pending[i].c_str(), name.c_str()) == 0) return static_cast<uint32_t>(keywords_.size() + i);
    if (keywords_.size() + pending.size() >= kMaxKeywords)
        return make_error(0, "", "too many keywords in this mailbox");
    if (name.empty() || name.size() > kMaxKeyLength * 4) return make_error(0, "", "bad keyword");
    auto id = static_cast<uint32_t>(keywords_.size() + pending.size());
    pending.push_back(name);
    b.keyword(id, name);
    return id;
}

Result<std::optional<std::string>> Index::locate(const std::string& base) const {
    return maildir::find_base(maildir_, base);
}

// Renames the file of `m` to carry its name's letters changed by `mode`: the name, not the index,
// holds the system flags, so a letter another reader set meanwhile stays. The letters it now
// carries, or nullopt when the file is gone.
Result<std::optional<std::string>> Index::rename_for_flags(Message& m, FlagMode mode, std::string_view letters) {
    for (int attempt = 0; attempt < 3; ++attempt) {
        if (m.file.empty()) {
            auto where = locate(m.base);
            if (!where) return where.error();
            if (!*where) return std::optional<std::string>();
            m.file = **where;
        }
        auto info = maildir::parse_name(std::string_view(m.file).substr(4));
        if (!info) return info.error();
        std::string flags = combine_flags(info->has_info ? normal_flags(info->flags) : "", mode, letters);
        // Other bytes of the info (none that ferry writes) are dropped with the letters' rewrite.
        std::string target = "cur/" + info->unique + ":2," + flags;
        if (target == m.file) return std::optional<std::string>(flags);
        if (::rename((maildir_ + "/" + m.file).c_str(), (maildir_ + "/" + target).c_str()) == 0) {
            m.file = target;
            return std::optional<std::string>(flags);
        }
        if (errno != ENOENT) return sys_error("cannot rename " + m.file);
        m.file.clear();  // another reader renamed it: find it again
    }
    return make_error(0, "", "message file keeps moving", m.base);
}

Result<std::vector<uint32_t>> Index::store_flags(std::span<const uint32_t> uids, FlagMode mode, std::string_view letters,
                                                 const std::vector<std::string>& keywords,
                                                 std::optional<uint64_t> unchanged_since, std::vector<uint32_t>* modified) {
    auto g = FlockGuard::take(lock_fd_.get(), LOCK_EX);
    if (!g) return g.error();
    if (auto r = read_new(true); !r) return r.error();
    RecordBatch b{uidnext_, highest_modseq_, {}};
    std::vector<std::string> pending;
    std::vector<uint32_t> kw_ids;
    for (const auto& k : keywords) {
        auto id = keyword_id(k, pending, b);
        if (!id) return id.error();
        kw_ids.push_back(*id);
    }
    std::sort(kw_ids.begin(), kw_ids.end());
    kw_ids.erase(std::unique(kw_ids.begin(), kw_ids.end()), kw_ids.end());
    std::vector<uint32_t> changed;
    for (uint32_t uid : uids) {
        Message* m = find_mut(uid);
        if (!m) continue;
        if (unchanged_since && m->modseq > *unchanged_since) {
            if (modified) modified->push_back(uid);
            continue;
        }
        std::vector<uint32_t> kws;
        if (mode == FlagMode::replace) kws = kw_ids;
        else if (mode == FlagMode::add) std::set_union(m->keywords.begin(), m->keywords.end(), kw_ids.begin(), kw_ids.end(), std::back_inserter(kws));
        else std::set_difference(m->keywords.begin(), m->keywords.end(), kw_ids.begin(), kw_ids.end(), std::back_inserter(kws));
        std::string flags = m->flags;
        if (mode == FlagMode::replace || !letters.empty()) {
            auto now = rename_for_flags(*m, mode, letters);
            if (!now) return now.error();
            if (!*now) {
                b.expunge(uid);
                continue;
            }
            flags = **now;
        }
        if (flags == m->flags && kws == m->keywords) continue;
        b.flags(uid, flags, std::move(kws));
        changed.push_back(uid);
    }
    // The renames must be on disk before the records that say they happened.
    if (!changed.empty() && (!fsync_dir(maildir_ + "/cur") || !fsync_dir(maildir_ + "/new")))
        return sys_error("cannot sync the Maildir");
    if (!changed.empty()) pause_at("index-after-flag-rename");
    if (auto r = append_records(b.recs, true); !r) return r.error();
    return changed;
}

Result<std::vector<uint32_t>> Index::expunge(std::span<const uint32_t> uids) {
    auto g = FlockGuard::take(lock_fd_.get(), LOCK_EX);
    if (!g) return g.error();
    if (auto r = read_new(true); !r) return r.error();
    RecordBatch b{uidnext_, highest_modseq_, {}};
    std::vector<uint32_t> gone;
    for (uint32_t uid : uids) {
        Message* m = find_mut(uid);
        if (!m) continue;
        for (int attempt = 0; attempt < 3; ++attempt) {
            if (m->file.empty()) {
                auto where = locate(m->base);
                if (!where) return where.error();
                if (!*where) break;
                m->file = **where;
            }
            if (::unlink((maildir_ + "/" + m->file).c_str()) == 0) break;
            if (errno != ENOENT) return sys_error("cannot remove " + m->file);
            m->file.clear();
        }
        b.expunge(uid);
        gone.push_back(uid);
    }
    if (!gone.empty()) {
        (void)fsync_dir(maildir_ + "/cur");  // an expunge a crash undoes only brings a message back
        (void)fsync_dir(maildir_ + "/new");
        pause_at("index-after-expunge-unlink");
    }
    if (auto r = append_records(b.recs, true); !r) return r.error();
    return gone;
}

Result<uint32_t> Index::claim_recent() {
    auto g = FlockGuard::take(lock_fd_.get(), LOCK_EX);
    if (!g) return g.error();
    if (auto r = read_new(true); !r) return r.error();
    uint32_t before = recent_upto_;
    if (uidnext_ - 1 <= before) return before;
    RecordBatch b{uidnext_, highest_modseq_, {}};
    b.recent(uidnext_ - 1);
    // Losing this record in a crash only shows some messages \Recent twice: no fdatasync.
    if (auto r = append_records(b.recs, false); !r) return r.error();
    return before;
}

Result<void> Index::set_cache(std::span<const CacheValue> values) {
    for (const auto& v : values)
        if (v.key.empty() || v.key.size() > kMaxKeyLength || v.value.size() > kMaxPayload - 512)
            return make_error(0, "", "cache key or value out of range", v.key);
    auto g = FlockGuard::take(lock_fd_.get(), LOCK_EX);
    if (!g) return g.error();
    if (auto r = read_new(true); !r) return r;
    if (auto r = cache_.catch_up(uidvalidity_, true); !r) return r;
    cache_current_ = true;
    // Values of messages gone, or computed for UIDs of an earlier UIDVALIDITY, are dropped.
    std::vector<CacheValue> keep;
    for (const auto& v : values)
        if ((v.uidvalidity == 0 || v.uidvalidity == uidvalidity_) && find_mut(v.uid)) keep.push_back(v);
    if (auto r = cache_.append(uidvalidity_, keep); !r) return r;
    if (cache_.records() <= 2 * messages_.size() + 1000) return {};
    return cache_.compact(uidvalidity_, [this](uint32_t uid) { return find_mut(uid) != nullptr; });
}

Result<void> Index::set_cache(uint32_t uid, std::string_view key, std::string_view value) {
    CacheValue v{uid, std::string(key), std::string(value)};
    return set_cache(std::span<const CacheValue>(&v, 1));
}

std::optional<std::string> Index::cache(uint32_t uid, std::string_view key) {
    if (!find(uid)) return std::nullopt;
    if (!cache_current_) {
        // Writers append whole records under the lock and a reader stops before a partial one: no lock here.
        if (auto r = cache_.catch_up(uidvalidity_, false); !r)
            log::warnx("%s/%s: %s", maildir_.c_str(), kCacheFile, r.error().what().c_str());
        cache_current_ = true;
    }
    return cache_.get(uid, key);
}

Result<Fd> Index::open_message(uint32_t uid) {
    Message* m = find_mut(uid);
    if (!m) return make_error(0, "", "no such message");
    for (int attempt = 0; attempt < 3; ++attempt) {
        if (m->file.empty()) {
            auto where = locate(m->base);
            if (!where) return where.error();
            if (!*where) return make_error(0, "", "message has been removed", m->base);
            m->file = **where;
        }
        Fd fd = open_file(m->file);
        if (fd.valid()) return fd;
        if (errno != ENOENT) return sys_error("cannot open " + m->file);
        m->file.clear();
        // The directories are opened again by path too: the folder may have been made anew.
        new_dir_.reset();
        cur_dir_.reset();
    }
    return make_error(0, "", "message file keeps moving", m->base);
}

// `file` ("new/<name>" or "cur/<name>") opened for reading through the held directory.
Fd Index::open_file(const std::string& file) {
    bool cur = file.starts_with("cur/");
    if (!cur && !file.starts_with("new/")) return Fd(::open((maildir_ + "/" + file).c_str(), O_RDONLY | O_CLOEXEC));
    Fd& dir = cur ? cur_dir_ : new_dir_;
    if (!dir.valid()) dir.reset(::open((maildir_ + (cur ? "/cur" : "/new")).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid()) return Fd();
    return Fd(::openat(dir.get(), file.c_str() + 4, O_RDONLY | O_CLOEXEC));
}

namespace {

// The counters after the last record of the index at `fd` (`size` bytes), when that record is whole.
std::optional<Record> last_record(int fd, uint64_t size) {
    if (size == 0) return std::nullopt;
    uint64_t from = size > kTailWindow ? size - kTailWindow : 0;
    auto tail = read_range(fd, from, size);
    if (!tail || tail->size() != size - from || tail->back() != '\n') return std::nullopt;
    size_t nl = tail->rfind('\n', tail->size() - 2);
    if (nl == std::string::npos && from != 0) return std::nullopt;  // a record longer than the window
    size_t start = nl == std::string::npos ? 0 : nl + 1;
    DecodeResult d = decode(std::string_view(*tail).substr(start));
    if (d.status != Decoded::ok || d.used != tail->size() - start) return std::nullopt;
    return d.record;
}

// A sync rather than an add: when the index is new, the messages already there get their UIDs
// first, in delivery order, and these after them.
Result<std::vector<uint32_t>> append_in_full(const std::string& maildir, std::span<const std::string> names) {
    auto ix = Index::open(maildir);
    if (!ix) return ix.error();
    if (auto s = ix->sync(); !s) return s.error();
    return ix->add(names);
}

}  // namespace

Result<uint32_t> append_delivered(const std::string& maildir, const std::string& name) {
    auto uids = append_delivered(maildir, std::span<const std::string>(&name, 1));
    if (!uids) return uids.error();
    return uids->front();
}

Result<std::vector<uint32_t>> append_delivered(const std::string& maildir, std::span<const std::string> names) {
    if (names.empty()) return std::vector<uint32_t>{};
    std::vector<maildir::NameInfo> infos;
    for (const auto& name : names) {
        auto info = maildir::parse_name(name);
        if (!info) return info.error();
        infos.push_back(std::move(info.value()));
    }
    pause_at("index-before-uid");
    auto lock_fd = open_lock_file(maildir);
    if (!lock_fd) return lock_fd.error();
    std::string path = maildir + "/" + kIndexFile;
    {
        auto g = FlockGuard::take(lock_fd->get(), LOCK_EX);
        if (!g) return g.error();
        Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
        struct stat st;
        if (fd.valid() && fstat(fd.get(), &st) == 0) {
            auto size = static_cast<uint64_t>(st.st_size);
            if (auto last = last_record(fd.get(), size)) {
                RecordBatch b{last->uidnext, last->highest_modseq, {}};
                std::string recs;
                std::vector<uint32_t> uids;
                for (const auto& info : infos) {
                    b.append(info.base, info.has_info ? normal_flags(info.flags) : "", {});
                    recs += encode(b.recs.back());
                    uids.push_back(b.recs.back().uid);
                }
                if (auto w = pwrite_all(fd.get(), recs, size); !w) {
                    (void)ftruncate(fd.get(), static_cast<off_t>(size));
                    return w.error();
                }
                // No fdatasync: the mark makes the first reader sync before anyone sees these UIDs.
                auto mark = read_mark(lock_fd->get());
                bool marked = mark && mark->ino == static_cast<uint64_t>(st.st_ino) && mark->offset <= size;
                if (!marked && !write_mark(lock_fd->get(), {static_cast<uint64_t>(st.st_ino), size}) &&
                    fdatasync(fd.get()) != 0)
                    return sys_error("cannot sync " + path);
                return uids;
            }
        }
    }
    // No index yet, or its tail needs repair: the full path does both, with its own lock and sync.
    return append_in_full(maildir, names);
}

}  // namespace ferry::store
