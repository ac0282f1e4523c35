// The queue file: a self-describing record of one accepted message, written by smtpd, owned by qmgr.
#include "common/spool/spool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <random>
#include <utility>

#include "common/base/fs.hpp"
#include "common/base/log.hpp"

namespace ferry::spool {

namespace {

// Envelope values are single lines; a CR or LF inside would forge records.
std::string clean(std::string_view v) {
    std::string out(v);
    for (char& c : out)
        if (c == '\n' || c == '\r') c = ' ';
    return out;
}

Error corrupt(const std::string& why) { return make_error(0, "", "corrupt queue file: " + why); }

// Whether `fd` is still the file named `path`: a lock taken after the name was removed guards nothing.
bool same_file(int fd, const std::string& path) {
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Whether `path` may exist: only ENOENT says it does not.
bool name_exists(const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 || errno != ENOENT;
}

}  // namespace

Result<void> ensure_layout(const std::string& spool_dir) {
    for (const std::string& d : {spool_dir, spool_dir + "/" + kIncoming, spool_dir + "/" + kQueue}) {
        if (mkdir(d.c_str(), 0750) != 0 && errno != EEXIST) return sys_error("cannot create " + d);
    }
    return {};
}

std::string new_queue_id() {
    static std::mt19937 rng{std::random_device{}()};
    timeval tv;
    gettimeofday(&tv, nullptr);
    uint64_t usec = static_cast<uint64_t>(tv.tv_sec) * 1000000ULL + static_cast<uint64_t>(tv.tv_usec);
    char buf[32];
    snprintf(buf, sizeof buf, "%013" PRIX64 "%03X", static_cast<uint64_t>(usec & 0xFFFFFFFFFFFFFULL), static_cast<unsigned>(rng() & 0xFFF));
    return buf;
}

std::string encode_header(const Envelope& env) {
    std::string out = std::string(kMagic) + "\n";
    out += "id " + clean(env.id) + "\n";
    out += "arrival " + std::to_string(env.arrival) + "\n";
    out += "sender " + clean(env.sender) + "\n";
    out += "client " + clean(env.client) + "\n";
    out += "helo " + clean(env.helo) + "\n";
    if (!env.auth.empty()) out += "auth " + clean(env.auth) + "\n";
    for (const auto& r : env.recipients) out += "rcpt " + clean(r) + "\n";
    out += "data\n";
    return out;
}

std::string encode_trailer(uint64_t data_length) { return "\nend " + std::to_string(data_length) + "\n"; }

Result<QueuedMessage> decode(std::string_view file) {
    QueuedMessage m;
    size_t pos = 0;
    auto next_line = [&](std::string_view& line) {
        size_t nl = file.find('\n', pos);
        if (nl == std::string_view::npos) return false;
        line = file.substr(pos, nl - pos);
        pos = nl + 1;
        return true;
    };
    std::string_view line;
    if (!next_line(line) || line != kMagic) return corrupt("missing \"" + std::string(kMagic) + "\" header");
    for (;;) {
        if (!next_line(line)) return corrupt("no data record");
        if (line == "data") break;
        size_t sp = line.find(' ');
        std::string_view key = line.substr(0, sp);
        std::string value = sp == std::string_view::npos ? "" : std::string(line.substr(sp + 1));
        if (key == "id") m.envelope.id = value;
        else if (key == "arrival") m.envelope.arrival = std::strtoll(value.c_str(), nullptr, 10);
        else if (key == "sender") m.envelope.sender = value;
        else if (key == "client") m.envelope.client = value;
        else if (key == "helo") m.envelope.helo = value;
        else if (key == "auth") m.envelope.auth = value;
        else if (key == "rcpt") m.envelope.recipients.push_back(value);
        // Unknown records are skipped, so a newer writer's extra fields do not break an older reader.
    }
    // The END record is last: "\nend <length>\n".
    if (file.size() < pos + 1 || file.back() != '\n') return corrupt("no END record");
    size_t end_at = file.rfind("\nend ", file.size() - 1);
    if (end_at == std::string_view::npos || end_at < pos - 1) return corrupt("no END record");
    std::string_view len_text = file.substr(end_at + 5, file.size() - 1 - (end_at + 5));
    uint64_t len = 0;
    // Digits only: strtoull's sign would let "end -1" wrap around to the END line's own offset.
    auto [len_end, len_ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
    if (len_text.empty() || len_ec != std::errc() || len_end != len_text.data() + len_text.size() ||
        end_at < pos || len != end_at - pos)
        return corrupt("length in END record does not match");
    if (m.envelope.id.empty() || m.envelope.recipients.empty()) return corrupt("no id or no recipients");
    m.data.assign(file.substr(pos, len));
    return m;
}

Result<std::optional<std::string>> read_bytes(const std::string& path) {
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        if (errno == ENOENT) return std::optional<std::string>{};
        return sys_error("cannot open " + path);
    }
    std::string text;
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("cannot read " + path);
        if (n == 0) break;
        text.append(buf, static_cast<size_t>(n));
    }
    return std::optional<std::string>(std::move(text));
}

Result<QueuedMessage> read_file(const std::string& path) {
    auto bytes = read_bytes(path);
    if (!bytes) return bytes.error();
    if (!bytes->has_value()) return sys_error("cannot open " + path, ENOENT);
    return decode(**bytes);
}

Result<Writer> Writer::create(const std::string& spool_dir, Envelope& env) {
    return create(spool_dir, env, new_queue_id());
}

Result<Writer> Writer::create(const std::string& spool_dir, Envelope& env, const std::string& first_id) {
    Writer w;
    w.spool_dir_ = spool_dir;
    for (int attempt = 0; attempt < 10 && !w.fd_.valid(); ++attempt) {
        std::string id = attempt == 0 ? first_id : new_queue_id();
        std::string path = spool_dir + "/" + kIncoming + "/" + id;
        Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
        if (!fd.valid()) {
            if (errno != EEXIST) return sys_error("cannot create " + path);
            continue;
        }
        // qmgr's start-up may lock a new file before its writer does: it then removes it, and
        // this writer takes another id. Same when it removed the file between open and flock.
        if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) continue;
            int err = errno;
            unlink(path.c_str());
            return sys_error("cannot lock " + path, err);
        }
        if (!same_file(fd.get(), path)) continue;
        // An id still in queue/ (the clock stepped back) is skipped here; commit() checks again.
        if (name_exists(spool_dir + "/" + kQueue + "/" + id)) {
            unlink(path.c_str());
            continue;
        }
        w.fd_ = std::move(fd);
        w.id_ = id;
    }
    if (!w.fd_.valid()) return make_error(0, "", "cannot allocate a queue id");
    env.id = w.id_;
    std::string header = encode_header(env);
    if (auto r = write_all(w.fd_.get(), header.data(), header.size()); !r) return r.error();
    return w;
}

Writer::Writer(Writer&& o) noexcept
    : spool_dir_(std::move(o.spool_dir_)),
      id_(std::exchange(o.id_, {})),
      fd_(std::move(o.fd_)),
      data_length_(std::exchange(o.data_length_, 0)),
      done_(std::exchange(o.done_, true)) {}

Writer& Writer::operator=(Writer&& o) noexcept {
    if (this != &o) {
        discard();
        spool_dir_ = std::move(o.spool_dir_);
        id_ = std::exchange(o.id_, {});
        fd_ = std::move(o.fd_);
        data_length_ = std::exchange(o.data_length_, 0);
        done_ = std::exchange(o.done_, true);
    }
    return *this;
}

Writer::~Writer() { discard(); }

std::string Writer::incoming_path() const { return spool_dir_ + "/" + kIncoming + "/" + id_; }

Result<void> Writer::append(std::string_view data) {
    if (auto r = write_all(fd_.get(), data.data(), data.size()); !r) return r;
    data_length_ += data.size();
    return {};
}

// queue/<id> is taken: the file moves to a free id in incoming/, and its id record follows.
Result<void> Writer::take_new_id() {
    for (int attempt = 0; attempt < 10; ++attempt) {
        std::string id = new_queue_id();
        // The id record is rewritten in place, so the new id must be as long as the old one.
        if (id.size() != id_.size()) return make_error(0, "", "cannot give " + id_ + " a new queue id of another length");
        std::string to = spool_dir_ + "/" + kIncoming + "/" + id;
        if (link(incoming_path().c_str(), to.c_str()) != 0) {
            if (errno == EEXIST) continue;
            return sys_error("link " + incoming_path() + " to " + to);
        }
        unlink(incoming_path().c_str());
        id_ = id;
        if (pwrite(fd_.get(), id.data(), id.size(), static_cast<off_t>(kIdOffset)) != static_cast<ssize_t>(id.size()))
            return sys_error("cannot rewrite the queue id of " + to);
        if (fsync(fd_.get()) != 0) return sys_error("fsync queue file " + id_);
        return {};
    }
    return make_error(0, "", "cannot allocate a queue id");
}

Result<void> Writer::commit() {
    std::string trailer = encode_trailer(data_length_);
    if (auto r = write_all(fd_.get(), trailer.data(), trailer.size()); !r) return r;
    if (fsync(fd_.get()) != 0) return sys_error("fsync queue file " + id_);
    // link, unlike rename, never replaces a queue file of the same id (two writers in one
    // microsecond, a clock stepped back): that message would be lost.
    for (int attempt = 0;; ++attempt) {
        std::string to = spool_dir_ + "/" + kQueue + "/" + id_;
        if (link(incoming_path().c_str(), to.c_str()) == 0) break;
        if (errno != EEXIST || attempt == 10) return sys_error("link " + incoming_path() + " to " + to);
        std::string old = id_;
        if (auto r = take_new_id(); !r) return r;
        log::warnx("%s: queue/%s exists already; the message is queued as %s", old.c_str(), old.c_str(), id_.c_str());
    }
    done_ = true;
    auto synced = fsync_dir(spool_dir_ + "/" + kQueue);
    // The incoming name goes while the lock is held; a crash before it leaves both names of one
    // file, and qmgr's start-up removes the incoming one.
    unlink(incoming_path().c_str());
    fd_.reset();
    return synced;
}

void Writer::discard() {
    if (done_ || id_.empty()) return;
    done_ = true;
    unlink(incoming_path().c_str());  // before the lock goes with the fd
    fd_.reset();
}

Result<bool> remove_abandoned(const std::string& path) {
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd.valid()) {
        if (errno == ENOENT) return true;
        return sys_error("cannot open " + path);
    }
    if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) return false;
        return sys_error("cannot lock " + path);
    }
    // Locked and still the file of that name: its writer is gone (a writer locks before writing).
    if (!same_file(fd.get(), path)) return !name_exists(path);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("cannot remove " + path);
    return true;
}

}  // namespace ferry::spool
