// The per-folder cache file beside the index (ferry-mailstore(5)): values FETCH and SEARCH compute once, read lazily.
#include "common/store/cache_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "common/base/fs.hpp"
#include "common/base/log.hpp"
#include "common/store/index_record.hpp"

namespace ferry::store {

namespace {

constexpr size_t kReadChunk = 1024 * 1024;   // frames are scanned this much at a time
constexpr size_t kMaxKeys = 256;             // distinct cache keys per folder
constexpr size_t kWindow = 256 * 1024;       // values are read ahead this much (FETCH 1:* reads them in order)

Result<size_t> pread_some(int fd, char* buf, size_t size, uint64_t at) {
    size_t got = 0;
    while (got < size) {
        ssize_t n = ::pread(fd, buf + got, size - got, static_cast<off_t>(at + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("cannot read the mailbox cache");
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    return got;
}

// "<type> <uidnext> <modseq> <a> <b> ...": the tokens after the counters, at most `n`.
std::vector<std::string_view> head_tokens(std::string_view payload, size_t n) {
    std::vector<std::string_view> out;
    size_t at = 0;
    for (size_t i = 0; i < n + 3 && at <= payload.size(); ++i) {
        size_t sp = payload.find(' ', at);
        if (i >= 3) out.push_back(payload.substr(at, sp == std::string_view::npos ? std::string_view::npos : sp - at));
        if (sp == std::string_view::npos) break;
        at = sp + 1;
    }
    return out;
}

uint32_t number(std::string_view s) {
    uint32_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size() ? v : 0;
}

std::string header_record(uint32_t uidvalidity) {
    Record h;
    h.type = RecordType::header;
    h.uidvalidity = uidvalidity;
    return encode(h);
}

// "C 1 0 <uid> <key> <value>": the value's bytes as they are, to the end of the payload (the
// framing's length delimits it), so that reading one costs a checksum and a copy.
std::string value_record(const CacheValue& v) {
    std::string p = "C 1 0 " + std::to_string(v.uid) + " " + escape_token(v.key) + " ";
    p += v.value;
    return frame_payload(p);
}

}  // namespace

void CacheFile::reset() {
    file_.reset();
    ino_ = 0;
    loaded_ = false;
    stale_ = false;
    uidvalidity_ = 0;
    offset_ = 0;
    records_ = 0;
    slots_.clear();
    window_.clear();
    window_at_ = 0;
}

uint32_t CacheFile::key_id(std::string_view key) {
    for (size_t i = 0; i < keys_.size(); ++i)
        if (keys_[i] == key) return static_cast<uint32_t>(i);
    keys_.emplace_back(key);
    return static_cast<uint32_t>(keys_.size() - 1);
}

// Takes one whole frame at `offset`; false when the file says nothing more that counts.
bool CacheFile::take_frame(std::string_view payload, uint64_t offset, size_t used, uint32_t uidvalidity) {
    char type = payload.empty() ? '\0' : payload[0];
    if (records_ == 0) {
        auto t = head_tokens(payload, 2);
        if (type != static_cast<char>(RecordType::header) || t.size() != 2) return false;
        uidvalidity_ = number(t[1]);
        stale_ = uidvalidity_ != uidvalidity;
    } else if (type == static_cast<char>(RecordType::cache)) {
        auto t = head_tokens(payload, 2);
        uint32_t uid = t.size() == 2 ? number(t[0]) : 0;
        if (uid == 0 || t[1].empty() || t[1].size() > 3 * kMaxKeyLength) return false;
        std::string key;
        if (!unescape_token(t[1], key)) return false;
        if (keys_.size() >= kMaxKeys && std::find(keys_.begin(), keys_.end(), key) == keys_.end()) return false;
        slots_[uint64_t(uid) << 32 | key_id(key)] = Slot{offset, static_cast<uint32_t>(used)};
    } else {
        return false;
    }
    ++records_;
    return !stale_;
}

Result<void> CacheFile::cut(uint64_t at) {
    log::warnx("%s/%s: cutting a torn or damaged tail at offset %llu", maildir_.c_str(), kCacheFile,
               static_cast<unsigned long long>(at));
    if (ftruncate(file_.get(), static_cast<off_t>(at)) != 0) return sys_error("cannot truncate the mailbox cache");
    window_.clear();
    return {};
}

Result<void> CacheFile::catch_up(uint32_t uidvalidity, bool writer) {
    if (loaded_ && uidvalidity_ != 0 && uidvalidity_ != uidvalidity) reset();
    std::string path = maildir_ + "/" + kCacheFile;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) return sys_error("cannot stat " + path);
        reset();
        loaded_ = true;
        return {};
    }
    if (!file_.valid() || st.st_ino != ino_) {
        reset();
        file_ = Fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
        if (!file_.valid()) return sys_error("cannot open " + path);
        ino_ = st.st_ino;
    }
    loaded_ = true;
    struct stat fst;
    if (fstat(file_.get(), &fst) != 0) return sys_error("cannot stat " + path);
    auto size = static_cast<uint64_t>(fst.st_size);
    std::string buf;
    while (offset_ < size && !stale_) {
        window_.clear();
        buf.resize(static_cast<size_t>(std::min<uint64_t>(size - offset_, kReadChunk)));
        auto got = pread_some(file_.get(), buf.data(), buf.size(), offset_);
        if (!got) return got.error();
        std::string_view rest(buf.data(), *got);
        size_t taken = 0;
        bool bad = false;
        while (!rest.empty()) {
            Frame f = scan_frame(rest);
            if (f.status == Decoded::incomplete && offset_ + taken + rest.size() < size) break;  // the next chunk has the rest
            if (f.status != Decoded::ok || !take_frame(f.payload, offset_ + taken, f.used, uidvalidity)) {
                bad = f.status != Decoded::ok || !stale_;
                break;
            }
            taken += f.used;
            rest.remove_prefix(f.used);
        }
        offset_ += taken;
        if (bad || (taken == 0 && !stale_)) {
            // A torn write (a writer killed in it) or damage: what follows is dropped.
            if (writer) return cut(offset_);
            break;
        }
    }
    if (stale_ && writer) return replace(uidvalidity, "");
    return {};
}

Result<std::string_view> CacheFile::bytes_at(uint64_t offset, size_t size) {
    if (offset < window_at_ || offset + size > window_at_ + window_.size()) {
        window_.resize(std::max(size, kWindow));
        auto got = pread_some(file_.get(), window_.data(), window_.size(), offset);
        if (!got) {
            window_.clear();
            return got.error();
        }
        window_.resize(*got);
        window_at_ = offset;
        if (*got < size) return make_error(0, "", "mailbox cache shorter than its records");
    }
    return std::string_view(window_).substr(static_cast<size_t>(offset - window_at_), size);
}

std::optional<std::string> CacheFile::get(uint32_t uid, std::string_view key) {
    if (stale_ || !file_.valid()) return std::nullopt;
    uint32_t id = 0;
    for (; id < keys_.size() && keys_[id] != key; ++id) {}
    if (id == keys_.size()) return std::nullopt;
    auto it = slots_.find(uint64_t(uid) << 32 | id);
    if (it == slots_.end()) return std::nullopt;
    auto bytes = bytes_at(it->second.offset, it->second.size);
    std::string head = "C 1 0 " + std::to_string(uid) + " " + escape_token(key) + " ";
    if (!bytes || (!it->second.checked && !frame_checksum_ok(*bytes)) || bytes->substr(kFrameHead, head.size()) != head) {
        slots_.erase(it);  // a damaged value: computed again and appended
        return std::nullopt;
    }
    it->second.checked = true;
    return std::string(bytes->substr(kFrameHead + head.size(), bytes->size() - kFrameHead - head.size() - 1));
}

Result<void> CacheFile::replace(uint32_t uidvalidity, std::string_view records) {
    std::string path = maildir_ + "/" + kCacheFile, tmp = maildir_ + "/" + kCacheTempFile;
    std::string data = header_record(uidvalidity);
    data += records;
    {
        Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (!fd.valid()) return sys_error("cannot create " + tmp);
        if (auto w = write_all(fd.get(), data.data(), data.size()); !w) return w;
    }
    // No fsync: a crash that leaves this file empty or torn only loses cached values.
    if (::rename(tmp.c_str(), path.c_str()) != 0) return sys_error("cannot rename " + tmp);
    reset();
    return catch_up(uidvalidity, true);
}

Result<void> CacheFile::append(uint32_t uidvalidity, std::span<const CacheValue> values) {
    if (values.empty()) return {};
    std::string buf;
    for (const auto& v : values) buf += value_record(v);
    if (!file_.valid() || stale_ || records_ == 0) return replace(uidvalidity, buf);
    uint64_t at = offset_;
    size_t done = 0;
    while (done < buf.size()) {
        ssize_t n = ::pwrite(file_.get(), buf.data() + done, buf.size() - done, static_cast<off_t>(at + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            (void)ftruncate(file_.get(), static_cast<off_t>(at));
            return sys_error("cannot write the mailbox cache");
        }
        done += static_cast<size_t>(n);
    }
    return catch_up(uidvalidity, true);
}

Result<void> CacheFile::compact(uint32_t uidvalidity, const std::function<bool(uint32_t)>& live) {
    std::vector<std::pair<uint64_t, Slot>> keep;
    for (const auto& [k, s] : slots_)
        if (live(static_cast<uint32_t>(k >> 32))) keep.emplace_back(k, s);
    std::sort(keep.begin(), keep.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string data;
    for (const auto& [k, s] : keep) {
        auto bytes = bytes_at(s.offset, s.size);
        if (bytes && frame_checksum_ok(*bytes)) data += *bytes;
    }
    return replace(uidvalidity, data);
}

}  // namespace ferry::store
