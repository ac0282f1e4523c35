// The queue file: a self-describing record of one accepted message, written by smtpd, owned by qmgr.
#include "common/spool/spool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <utility>

#include "common/base/crc32c.hpp"
#include "common/base/fs.hpp"
#include "common/base/log.hpp"
#include "common/spool/spare.hpp"

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

// Whether `path` may exist: only ENOENT says it does not.
bool name_exists(const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 || errno != ENOENT;
}

constexpr uint64_t kIdTimeMask = 0xFFFFFFFFFFFFFULL;  // the 13 hex digits of an id's time part

// Whether `id` names anything qmgr keeps in state/ or corrupt/ (see ferry-spool(5)): a new message
// of that id would match a leftover state and be taken for one already delivered.
bool id_leftover(const std::string& spool_dir, const std::string& id) {
    for (const std::string& name : {std::string(kState) + "/" + id, std::string(kState) + "/" + id + ".tmp",
                                    std::string(kCorrupt) + "/" + id, std::string(kCorrupt) + "/" + id + ".state"})
        if (name_exists(spool_dir + "/" + name)) return true;
    return false;
}

}  // namespace

Result<void> ensure_layout(const std::string& spool_dir) {
    for (const std::string& d :
         {spool_dir, spool_dir + "/" + kIncoming, spool_dir + "/" + kQueue, spool_dir + "/" + kSpare}) {
        if (mkdir(d.c_str(), 0750) != 0 && errno != EEXIST) return sys_error("cannot create " + d);
    }
    return {};
}

std::string new_queue_id() {
    timeval tv;
    gettimeofday(&tv, nullptr);
    return new_queue_id(static_cast<uint64_t>(tv.tv_sec) * 1000000ULL + static_cast<uint64_t>(tv.tv_usec));
}

std::string new_queue_id(uint64_t now_usec) {
    static std::mt19937 rng{std::random_device{}()};
    static std::mutex rng_lock;
    // The last time part handed out: a clock stepped back (even to the same microsecond) never
    // gives this process an id it gave before, nor one that sorts before it.
    static std::atomic<uint64_t> last{0};
    uint64_t prev = last.load();
    uint64_t usec;
    do {
        usec = std::max(now_usec & kIdTimeMask, prev + 1) & kIdTimeMask;
    } while (!last.compare_exchange_weak(prev, usec));
    unsigned salt;
    {
        std::lock_guard<std::mutex> g(rng_lock);
        salt = static_cast<unsigned>(rng() & 0xFFF);
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%013" PRIX64 "%03X", usec, salt);
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
    if (env.smtputf8) out += "smtputf8\n";
    if (!env.body.empty()) out += "body " + clean(env.body) + "\n";
    if (!env.ret.empty()) out += "ret " + clean(env.ret) + "\n";
    if (!env.envid.empty()) out += "envid " + clean(env.envid) + "\n";
    for (size_t i = 0; i < env.recipients.size(); ++i) {
        out += "rcpt " + clean(env.recipients[i]) + "\n";
        RcptDsn d = env.dsn_of(i);
        if (!d.notify.empty()) out += "notify " + clean(d.notify) + "\n";
        if (!d.orcpt.empty()) out += "orcpt " + clean(d.orcpt) + "\n";
    }
    out += "data\n";
    return out;
}

std::string encode_trailer(uint64_t data_length, uint64_t late_length) {
    if (late_length == 0) return "\nend " + std::to_string(data_length) + "\n";
    return "\nend " + std::to_string(data_length) + " " + std::to_string(late_length) + "\n";
}

std::string encode_trailer(uint64_t data_length, uint64_t late_length, uint32_t checksum) {
    char sum[16];
    snprintf(sum, sizeof sum, "%08x", checksum);
    return "\nend " + std::to_string(data_length) + " " + std::to_string(late_length) + " " + sum + "\n";
}

namespace {

// The header records up to and including "data\n": the envelope, and where the data starts in
// `pos`. Need more (nullopt) when the "data" record is not in `head` yet.
std::optional<Result<Envelope>> decode_header(std::string_view head, size_t& pos) {
    Envelope env;
    pos = 0;
    auto next_line = [&](std::string_view& line) {
        size_t nl = head.find('\n', pos);
        if (nl == std::string_view::npos) return false;
        line = head.substr(pos, nl - pos);
        pos = nl + 1;
        return true;
    };
    std::string_view line;
    if (!next_line(line)) {
        if (std::string_view(kMagic).starts_with(head)) return std::nullopt;
        return Result<Envelope>(corrupt("missing \"" + std::string(kMagic) + "\" header"));
    }
    if (line != kMagic) return Result<Envelope>(corrupt("missing \"" + std::string(kMagic) + "\" header"));
    for (;;) {
        if (!next_line(line)) return std::nullopt;
        if (line == "data") break;
        size_t sp = line.find(' ');
        std::string_view key = line.substr(0, sp);
        std::string value = sp == std::string_view::npos ? "" : std::string(line.substr(sp + 1));
        if (key == "id") env.id = value;
        else if (key == "arrival") env.arrival = std::strtoll(value.c_str(), nullptr, 10);
        else if (key == "sender") env.sender = value;
        else if (key == "client") env.client = value;
        else if (key == "helo") env.helo = value;
        else if (key == "auth") env.auth = value;
        else if (key == "rcpt") env.recipients.push_back(value);
        else if (key == "smtputf8") env.smtputf8 = true;
        else if (key == "body") env.body = value;
        else if (key == "ret") env.ret = value;
        else if (key == "envid") env.envid = value;
        else if ((key == "notify" || key == "orcpt") && !env.recipients.empty()) {
            // Of the rcpt record before it.
            env.rcpt_dsn.resize(env.recipients.size());
            (key == "notify" ? env.rcpt_dsn.back().notify : env.rcpt_dsn.back().orcpt) = value;
        }
        // Unknown records are skipped, so a newer writer's extra fields do not break an older reader.
    }
    if (env.id.empty() || env.recipients.empty()) return Result<Envelope>(corrupt("no id or no recipients"));
    return Result<Envelope>(std::move(env));
}

// The lengths of the END record "\nend <data> [<late>]\n" that ends `tail`, the last bytes of a
// file of `file_size` bytes whose data starts at `data_at`.
struct Lengths {
    uint64_t data = 0;
    uint64_t late = 0;
    std::optional<uint32_t> checksum;
    uint64_t end_at = 0;  // where the END record's "\nend" starts: the checksum covers what is before
};

// A decimal number that is all of `text`. Digits only: strtoull's sign would let "end -1" wrap
// around to the END line's own offset.
std::optional<uint64_t> parse_length(std::string_view text) {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return n;
}

Result<Lengths> decode_trailer(std::string_view tail, uint64_t file_size, uint64_t data_at) {
    if (tail.empty() || tail.back() != '\n') return corrupt("no END record");
    size_t end_at = tail.rfind("\nend ", tail.size() - 1);
    if (end_at == std::string_view::npos) return corrupt("no END record");
    uint64_t end_in_file = file_size - tail.size() + end_at;
    if (end_in_file < data_at) return corrupt("no END record");
    std::string_view text = tail.substr(end_at + 5, tail.size() - 1 - (end_at + 5));
    size_t sp = text.find(' ');
    auto data = parse_length(text.substr(0, sp));
    std::string_view rest = sp == std::string_view::npos ? std::string_view() : text.substr(sp + 1);
    size_t sp2 = rest.find(' ');
    auto late = sp == std::string_view::npos ? std::optional<uint64_t>(0) : parse_length(rest.substr(0, sp2));
    if (!data || !late || *data > end_in_file - data_at || *late != end_in_file - data_at - *data)
        return corrupt("length in END record does not match");
    Lengths l{*data, *late, std::nullopt, end_in_file};
    if (sp2 != std::string_view::npos) {
        std::string_view sum = rest.substr(sp2 + 1);
        uint32_t v = 0;
        auto [at, ec] = std::from_chars(sum.data(), sum.data() + sum.size(), v, 16);
        if (sum.size() != 8 || ec != std::errc() || at != sum.data() + sum.size())
            return corrupt("bad checksum in END record");
        l.checksum = v;
    }
    return l;
}

Error checksum_mismatch() { return corrupt("checksum in END record does not match (a torn or damaged file)"); }

constexpr size_t kTrailerRead = 64;         // "\nend " and 20 digits fit many times
constexpr size_t kMaxHeader = 8 << 20;       // envelope records; a file without "data" in them is corrupt

Result<size_t> pread_some(int fd, char* buf, size_t len, uint64_t at) {
    for (;;) {
        ssize_t n = pread(fd, buf, len, static_cast<off_t>(at));
        if (n >= 0) return static_cast<size_t>(n);
        if (errno != EINTR) return sys_error("cannot read queue file");
    }
}

// The CRC-32C of the first `end` bytes of the file open on `fd`; nullopt when it is shorter.
Result<std::optional<uint32_t>> crc_of_file(int fd, uint64_t end) {
    uint32_t crc = 0;
    std::string buf(64 * 1024, '\0');
    for (uint64_t at = 0; at < end;) {
        auto n = pread_some(fd, buf.data(), static_cast<size_t>(std::min<uint64_t>(buf.size(), end - at)), at);
        if (!n) return n.error();
        if (*n == 0) return std::optional<uint32_t>();
        crc = crc32c(crc, buf.data(), *n);
        at += *n;
    }
    return std::optional<uint32_t>(crc);
}

}  // namespace

Result<QueuedMessage> decode(std::string_view file) {
    size_t pos = 0;
    auto env = decode_header(file, pos);
    if (!env) return corrupt("no data record");
    if (!*env) return env->error();
    auto len = decode_trailer(file.substr(pos), file.size(), pos);
    if (!len) return len.error();
    if (len->checksum && crc32c(0, file.substr(0, len->end_at)) != *len->checksum) return checksum_mismatch();
    std::string data(file.substr(pos + len->data, len->late));
    data += file.substr(pos, len->data);
    return QueuedMessage{std::move(env->value()), std::move(data)};
}

Result<size_t> MessageData::read(uint64_t at, char* buf, size_t len) const {
    if (at >= length) return size_t{0};
    uint64_t data = length - late;
    // The late fields come first, from behind the data; a read stops where they end.
    uint64_t in_file = at < late ? offset + data + at : offset + (at - late);
    len = static_cast<size_t>(std::min<uint64_t>(len, at < late ? late - at : length - at));
    auto n = pread_some(fd.get(), buf, len, in_file);
    if (n && *n == 0) return make_error(0, "", "queue file is shorter than its END record says");
    return n;
}

Result<OpenedMessage> open_message(const std::string& path) {
    OpenedMessage m;
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        if (errno != ENOENT) return sys_error("cannot open " + path);
        m.status = OpenedMessage::Status::missing;
        return m;
    }
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return sys_error("cannot stat " + path);
    uint64_t size = static_cast<uint64_t>(st.st_size);
    std::string head;
    size_t pos = 0;
    std::optional<Result<Envelope>> env;
    char buf[16384];
    while (!(env = decode_header(head, pos)) && head.size() < size && head.size() < kMaxHeader) {
        auto n = pread_some(fd.get(), buf, sizeof buf, head.size());
        if (!n) return n.error();
        if (*n == 0) break;
        head.append(buf, *n);
    }
    auto bad = [](const Error& e) {
        OpenedMessage c;
        c.status = OpenedMessage::Status::corrupt;
        c.why = e.what();
        return c;
    };
    if (!env) return bad(corrupt("no data record"));
    if (!*env) return bad(env->error());
    size_t tail_len = static_cast<size_t>(std::min<uint64_t>(kTrailerRead, size - pos));
    std::string tail(tail_len, '\0');
    auto n = pread_some(fd.get(), tail.data(), tail_len, size - tail_len);
    if (!n) return n.error();
    tail.resize(*n);
    auto len = decode_trailer(tail, size, pos);
    if (!len) return bad(len.error());
    m.envelope = std::move(env->value());
    m.data = MessageData{std::move(fd), pos, len->data + len->late, len->late};
    m.checksum = len->checksum;
    return m;
}

Result<bool> checksum_matches(const OpenedMessage& m) {
    if (!m.checksum) return true;
    auto crc = crc_of_file(m.data.fd.get(), m.data.offset + m.data.length);
    if (!crc) return crc.error();
    return *crc && **crc == *m.checksum;  // a file shorter than its END record said is not whole
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
    for (int attempt = 0; attempt < 10 && !w.file_; ++attempt) {
        std::string id = attempt == 0 ? first_id : new_queue_id();
        std::string path = spool_dir + "/" + kIncoming + "/" + id;
        Fd fd = take_spare(spool_dir, path);
        bool reused = fd.valid();
        if (!reused) fd = Fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
        if (!fd.valid()) {
            if (errno != EEXIST) return sys_error("cannot create " + path);
            continue;
        }
        // A spare was locked, and checked to be the file renamed here, by take_spare() already.
        if (!reused) {
            // qmgr's start-up may lock a new file before its writer does: it then removes it, and
            // this writer takes another id. Same when it removed the file between open and flock.
            if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
                if (errno == EWOULDBLOCK) continue;
                int err = errno;
                unlink(path.c_str());
                return sys_error("cannot lock " + path, err);
            }
            if (!same_file(fd.get(), path)) continue;
        }
        // An id still in queue/, state/ or corrupt/ is skipped here; commit() checks again.
        if (name_exists(spool_dir + "/" + kQueue + "/" + id) || id_leftover(spool_dir, id)) {
            unlink(path.c_str());
            continue;
        }
        w.file_.emplace(std::move(fd), path);
        w.id_ = id;
        w.reused_ = reused;
    }
    if (!w.file_) return make_error(0, "", "cannot allocate a queue id");
    env.id = w.id_;
    std::string header = encode_header(env);
    if (auto r = w.file_->write(header); !r) return r.error();
    w.data_offset_ = header.size();
    w.crc_ = crc32c(0, header);
    return w;
}

Writer::Writer(Writer&& o) noexcept
    : spool_dir_(std::move(o.spool_dir_)),
      id_(std::exchange(o.id_, {})),
      file_(std::exchange(o.file_, std::nullopt)),
      data_offset_(std::exchange(o.data_offset_, 0)),
      data_length_(std::exchange(o.data_length_, 0)),
      late_length_(std::exchange(o.late_length_, 0)),
      trailer_written_(std::exchange(o.trailer_written_, false)),
      reused_(std::exchange(o.reused_, false)),
      crc_(std::exchange(o.crc_, 0)),
      queued_(std::exchange(o.queued_, {})),
      spares_(std::exchange(o.spares_, {})) {}

Writer& Writer::operator=(Writer&& o) noexcept {
    if (this != &o) {
        discard();
        spool_dir_ = std::move(o.spool_dir_);
        id_ = std::exchange(o.id_, {});
        file_ = std::exchange(o.file_, std::nullopt);
        data_offset_ = std::exchange(o.data_offset_, 0);
        data_length_ = std::exchange(o.data_length_, 0);
        late_length_ = std::exchange(o.late_length_, 0);
        trailer_written_ = std::exchange(o.trailer_written_, false);
        reused_ = std::exchange(o.reused_, false);
        crc_ = std::exchange(o.crc_, 0);
        queued_ = std::exchange(o.queued_, {});
        spares_ = std::exchange(o.spares_, {});
    }
    return *this;
}

Writer::~Writer() { discard(); }

std::string Writer::incoming_path() const { return spool_dir_ + "/" + kIncoming + "/" + id_; }

Result<void> Writer::append(std::string_view data) {
    if (!file_ || trailer_written_) return make_error(0, "", "queue file " + id_ + " is no longer being written");
    if (late_length_) return make_error(0, "", "queue file " + id_ + ": data after the late header fields");
    if (auto r = file_->write(data); !r) return r;
    data_length_ += data.size();
    crc_ = crc32c(crc_, data);
    return {};
}

Result<void> Writer::add_header(std::string_view fields) {
    if (!file_ || trailer_written_) return make_error(0, "", "queue file " + id_ + " is no longer being written");
    if (auto r = file_->write(fields); !r) return r;
    late_length_ += fields.size();
    crc_ = crc32c(crc_, fields);
    return {};
}

Result<MessageData> Writer::reader() const {
    if (!file_) return make_error(0, "", "queue file " + id_ + " is no longer being written");
    Fd fd(open(file_->temp_path().c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return sys_error("cannot open " + file_->temp_path());
    return MessageData{std::move(fd), data_offset_, data_length_, 0};
}

// queue/<id> is taken: the file moves to a free id in incoming/, and its id record follows.
Result<void> Writer::take_new_id() {
    for (int attempt = 0; attempt < 10; ++attempt) {
        std::string id = new_queue_id();
        // The id record is rewritten in place, so the new id must be as long as the old one.
        if (id.size() != id_.size()) return make_error(0, "", "cannot give " + id_ + " a new queue id of another length");
        auto moved = file_->move_temp(spool_dir_ + "/" + kIncoming + "/" + id);
        if (!moved) return moved.error();
        if (!*moved) continue;
        id_ = id;
        // The commit fsyncs the rewritten id with the rest: publish() before its link, sync_linked() after.
        if (auto r = file_->write_at(id, static_cast<off_t>(kIdOffset)); !r) return r;
        return checksum_again();
    }
    return make_error(0, "", "cannot allocate a queue id");
}

// The id record was rewritten: the checksum is taken again from the file (a rare path: an id
// collision), and the END record, same length, rewritten in place when it is there already.
Result<void> Writer::checksum_again() {
    uint64_t end = data_offset_ + data_length_ + late_length_;
    Fd in(open(file_->temp_path().c_str(), O_RDONLY | O_CLOEXEC));  // the writer's own is write-only
    if (!in.valid()) return sys_error("cannot open " + file_->temp_path());
    auto crc = crc_of_file(in.get(), end);
    if (!crc) return crc.error();
    if (!*crc) return make_error(0, "", "queue file " + id_ + " is shorter than written");
    crc_ = **crc;
    if (!trailer_written_) return {};
    return file_->write_at(encode_trailer(data_length_, late_length_, crc_), static_cast<off_t>(end));
}

// The commit of ferry-spool(5): fsync(file), link into queue/, fsync(queue/), then the incoming name
// goes and the lock last, so the writer holds its lock until the message is accepted or refused
// (qmgr leaves a locked queue file alone: writer_active). A crash before the unlink leaves both
// names of one file, and qmgr's start-up removes the incoming one.
Result<void> Writer::commit(const std::function<void()>& linked) {
    if (auto r = sync(); !r) return r;
    auto dir = publish();
    if (!dir) return dir.error();
    return settle(fsync_dir(*dir), linked);
}

Result<void> Writer::write_trailer() {
    if (!file_) return make_error(0, "", "queue file " + id_ + " is no longer being written");
    if (trailer_written_) return {};
    std::string trailer = encode_trailer(data_length_, late_length_, crc_);
    if (auto r = file_->write(trailer); !r) return r;
    // A spare file may hold more of its old message: the END record must be the last line.
    off_t end = static_cast<off_t>(data_offset_ + data_length_ + late_length_ + trailer.size());
    if (reused_ && ftruncate(file_->fd(), end) != 0) return sys_error("cannot truncate " + incoming_path());
    trailer_written_ = true;
    return {};
}

Result<void> Writer::sync() {
    if (auto r = write_trailer(); !r) return r;
    return file_->sync();
}

// The link comes before the file's fsync, so that the two fsyncs run side by side: a crash before
// both are done may leave queue/<id> naming a file whose bytes are not all on disk (or a spare's
// old ones), but that client had no 250, and ferry-qmgr's scan reads such a file against its id
// record and checksum and moves it to corrupt/ (ferry-spool(5), STATES AND RECOVERY).
Result<void> Writer::sync_linked(GroupSync& queue_dir, const std::function<void()>& published) {
    if (auto r = write_trailer(); !r) return r;
    if (!queued_.empty()) return make_error(0, "", "queue file " + id_ + " is queued already");
    auto queued = link_into_queue(false);
    if (!queued) return queued.error();
    queued_ = std::move(*queued);
    spares_ = list_spares(spool_dir_);  // before the fsync of queue/ asked for next
    if (published) published();
    uint64_t ticket = queue_dir.request();
    Result<void> file = file_->sync();
    Result<void> dir = queue_dir.wait(ticket);
    if (file && dir) return {};
    spares_.clear();
    // After a failed fsync of the file its bytes may not be on disk: never accepted, even when the
    // name cannot go (the client may then get the message twice, never lose it).
    auto r = !file ? unpublish(queued_, file.error(), false) : unpublish(queued_, dir.error(), true);
    if (!r) queued_.clear();  // otherwise the name could not go: accepted after all (logged)
    return r;
}

Result<std::string> Writer::publish() {
    if (!file_ || !trailer_written_) return make_error(0, "", "queue file " + id_ + " is not ready to be queued");
    if (!queued_.empty()) return std::string();  // sync_linked() did it all
    auto queued = link_into_queue(true);
    if (!queued) return queued.error();
    queued_ = std::move(*queued);
    spares_ = list_spares(spool_dir_);  // before the fsync of queue/ that settle() is told of
    return spool_dir_ + "/" + kQueue;
}

Result<void> Writer::settle(const Result<void>& dir_synced, const std::function<void()>& linked) {
    if (!file_ || queued_.empty()) return make_error(0, "", "queue file " + id_ + " was not queued");
    if (linked) linked();
    Result<void> decided = dir_synced ? Result<void>() : unpublish(queued_, dir_synced.error(), true);
    if (dir_synced) offer_spares(spool_dir_, std::move(spares_));
    file_.reset();  // unlinks incoming/<id>, then closes the file and so drops the lock
    return decided;
}

// link, unlike rename, never replaces a queue file of the same id (two writers in one microsecond,
// a clock stepped back): that message would be lost. An id with a leftover in state/ or corrupt/
// is not used either. An error leaves nothing in queue/. `synced`: the file is fsync'd already
// (sync()), and a rewritten id is fsync'd before the link too; sync_linked() fsyncs after it.
Result<std::string> Writer::link_into_queue(bool synced) {
    bool want_sync = synced;  // sync() ran before: a rewritten id is fsync'd before the link too
    for (int attempt = 0;; ++attempt) {
        std::string to = spool_dir_ + "/" + kQueue + "/" + id_;
        if (!id_leftover(spool_dir_, id_)) {
            if (want_sync && !synced)
                if (auto r = file_->sync(); !r) return r.error();
            synced = true;
            if (link(file_->temp_path().c_str(), to.c_str()) == 0) return to;
            if (errno != EEXIST) return sys_error("link " + incoming_path() + " to " + to);
        }
        if (attempt == 10) return sys_error("link " + incoming_path() + " to " + to, EEXIST);
        std::string old = id_;
        if (auto r = take_new_id(); !r) return r.error();
        synced = false;  // the id record was rewritten
        log::warnx("%s: queue id in use already; the message is queued as %s", old.c_str(), id_.c_str());
    }
}

// An fsync failed after the link: the name goes again, so that a 4xx never leaves a message qmgr
// would deliver. When it cannot go, a whole message is accepted (and the log says so).
Result<void> Writer::unpublish(const std::string& queued, const Error& why, bool whole) {
    if (unlink(queued.c_str()) != 0 && errno != ENOENT) {
        int err = errno;
        if (!whole) {
            log::errorx("%s: %s stays in the queue although %s: %s", id_.c_str(), queued.c_str(), why.what().c_str(),
                        strerror(err));
            return why;
        }
        log::errorx("%s: queued although %s, since %s cannot be removed: %s", id_.c_str(), why.what().c_str(),
                    queued.c_str(), strerror(err));
        return {};
    }
    if (auto r = fsync_dir(spool_dir_ + "/" + kQueue); !r)
        log::errorx("%s: removed from the queue again, but %s", id_.c_str(), r.error().what().c_str());
    return why;
}

void Writer::discard() {
    if (file_) file_->discard();  // the incoming name goes before the lock goes with the fd
    file_.reset();
}

Result<bool> writer_active(const std::string& path) {
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd.valid()) {
        if (errno == ENOENT) return false;
        return sys_error("cannot open " + path);
    }
    if (flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return false;  // closing the fd drops it again
    if (errno == EWOULDBLOCK) return true;
    return sys_error("cannot lock " + path);
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
