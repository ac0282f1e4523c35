// Maildir store: unique names, durable delivery (tmp -> fsync -> new -> fsync dir), listing and tmp cleanup.
#include "common/store/maildir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <utility>

#include "common/base/fd.hpp"
#include "common/base/fs.hpp"
#include "common/base/hash.hpp"
#include "common/mail/address.hpp"

namespace ferry::maildir {

namespace {

constexpr const char* kSubdirs[] = {"tmp", "new", "cur"};
constexpr size_t kMaxSizeDigits = 20;  // UINT64_MAX has 20 digits

std::optional<uint64_t> parse_number(std::string_view v) {
    if (v.empty() || v.size() > kMaxSizeDigits) return std::nullopt;
    uint64_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
    return n;
}

Error bad_name(std::string_view name, const std::string& why) {
    return make_error(0, "", "bad Maildir file name \"" + std::string(name.substr(0, kMaxNameLength)) + "\": " + why);
}

// The S= and W= fields that follow the first ',' of the unique part; other fields are ignored.
Result<void> parse_size_fields(std::string_view unique, NameInfo& info) {
    size_t comma = unique.find(',');
    while (comma != std::string_view::npos) {
        size_t next = unique.find(',', comma + 1);
        std::string_view field = unique.substr(comma + 1, next == std::string_view::npos ? next : next - comma - 1);
        if (field.starts_with("S=") || field.starts_with("W=")) {
            auto n = parse_number(field.substr(2));
            if (!n) return bad_name(unique, "bad size field \"" + std::string(field) + "\"");
            (field[0] == 'S' ? info.size : info.vsize) = *n;
        }
        comma = next;
    }
    return {};
}

std::string local_host() {
    char buf[256] = "";
    gethostname(buf, sizeof buf - 1);
    return buf[0] ? buf : "localhost";
}

// A directory made here is fsync'd into its parent: the first message of a new account is only
// on disk once new/ and every directory above it are.
Result<void> make_dir(const std::string& path) {
    if (mkdir(path.c_str(), 0700) != 0) {
        if (errno == EEXIST) return {};
        return sys_error("cannot create directory " + path);
    }
    return fsync_dir(dir_of(path));
}

uint64_t total_size(std::span<const std::string_view> parts) {
    uint64_t n = 0;
    for (auto p : parts) n += p.size();
    return n;
}

// The CRLF size of the next piece of a message: a LF counts twice unless a CR precedes it, also
// across pieces (`prev` is the byte before the piece, and becomes its last).
uint64_t crlf_size_of_piece(std::string_view piece, char& prev) {
    if (piece.empty()) return 0;
    // Each LF not after a CR is one byte more on the wire; memchr finds them a vector at a time.
    uint64_t n = piece.size();
    const char* begin = piece.data();
    const char* end = begin + piece.size();
    for (const char* lf = static_cast<const char*>(std::memchr(begin, '\n', piece.size())); lf;
         lf = static_cast<const char*>(std::memchr(lf + 1, '\n', static_cast<size_t>(end - lf - 1))))
        if ((lf == begin ? prev : lf[-1]) != '\r') ++n;
    prev = piece.back();
    return n;
}

uint64_t total_crlf_size(std::span<const std::string_view> parts) {
    uint64_t n = 0;
    char prev = '\0';
    for (auto p : parts) n += crlf_size_of_piece(p, prev);
    return n;
}

// The last byte decides what a line-ending sender adds (see unterminated_octets); '\n' when empty.
uint64_t unterminated_after(char last) { return last == '\n' ? 0 : last == '\r' ? 1 : 2; }

struct FileSizes {
    uint64_t vsize = 0;
    uint64_t unterminated = 0;
};

// The CRLF size of a file on disk, for names without W=.
std::optional<FileSizes> file_crlf_size(const std::string& path) {
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    uint64_t n = 0;
    char prev = '\n';  // an empty file needs no line end
    char buf[65536];
    for (;;) {
        ssize_t got = read(fd.get(), buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return std::nullopt;
        if (got == 0) return FileSizes{n, unterminated_after(prev)};
        n += crlf_size_of_piece(std::string_view(buf, static_cast<size_t>(got)), prev);
    }
}

void scan_dir(const std::string& maildir, const char* sub, std::vector<Entry>& out) {
    std::string dir = maildir + "/" + sub;
    std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
    if (!d) return;
    while (dirent* de = readdir(d.get())) {
        if (de->d_name[0] == '.') continue;
        auto info = parse_name(de->d_name);
        if (!info) continue;
        Entry e;
        e.name = de->d_name;
        e.path = dir + "/" + e.name;
        e.in_new = std::string_view(sub) == "new";
        e.info = std::move(info.value());
        struct stat st;
        if (stat(e.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // moved or removed meanwhile
        e.size = static_cast<uint64_t>(st.st_size);
        e.mtime = st.st_mtime;
        e.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        if (e.info.vsize) {
            e.vsize = *e.info.vsize;
        } else if (auto v = file_crlf_size(e.path)) {
            e.vsize = v->vsize;
            e.unterminated = v->unterminated;
        } else {
            continue;
        }
        out.push_back(std::move(e));
    }
}

}  // namespace

Result<NameInfo> parse_name(std::string_view name) {
    if (name.empty()) return bad_name(name, "empty");
    if (name.size() > kMaxNameLength) return bad_name(name, "longer than " + std::to_string(kMaxNameLength));
    if (name.front() == '.') return bad_name(name, "dot file");
    if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos)
        return bad_name(name, "contains '/' or NUL");
    NameInfo info;
    size_t colon = name.find(':');
    info.unique = std::string(name.substr(0, colon));
    info.base = info.unique.substr(0, info.unique.find(','));
    if (info.base.empty()) return bad_name(name, "empty base name");
    if (colon != std::string_view::npos) {
        std::string_view rest = name.substr(colon + 1);
        // Only the "2," info is defined; "1," (experimental) and others carry no flags we understand.
        if (rest.starts_with("2,")) {
            info.has_info = true;
            info.flags = std::string(rest.substr(2));
        }
    }
    if (auto r = parse_size_fields(info.unique, info); !r) return r.error();
    return info;
}

std::string escape_host(std::string_view host) {
    std::string out;
    for (char c : host) {
        // A NUL would cut the path open(2) sees; control bytes have no place in a file name either.
        auto u = static_cast<unsigned char>(c);
        if (c == '/' || c == ':' || c == ',' || u < 0x20 || u == 0x7f) {
            char esc[5];
            std::snprintf(esc, sizeof esc, "\\%03o", u);
            out += esc;
        } else {
            out += c;
        }
    }
    return out;
}

std::string short_host(std::string_view host, size_t room) {
    std::string escaped = escape_host(host);
    if (escaped.size() <= room) return escaped;
    char hash[10];
    std::snprintf(hash, sizeof hash, "-%08x", fnv1a32(host));
    size_t keep = room > 9 ? room - 9 : 0;
    return escaped.substr(0, keep) + hash;
}

uint64_t crlf_size(std::string_view lf_message) {
    std::string_view one[] = {lf_message};
    return total_crlf_size(one);
}

uint64_t unterminated_octets(std::string_view lf_message) {
    return lf_message.empty() ? 0 : unterminated_after(lf_message.back());
}

std::string unique_name(uint64_t size, uint64_t vsize, std::string_view host) {
    // The counter makes names unique within one process; sec+usec+pid across processes (Dovecot's scheme).
    static std::atomic<uint64_t> counter{0};
    timeval tv;
    gettimeofday(&tv, nullptr);
    std::string base = std::to_string(tv.tv_sec) + ".M" + std::to_string(tv.tv_usec) + "P" +
                       std::to_string(getpid()) + "Q" + std::to_string(++counter) + ".";
    // The host is there for uniqueness across machines; a long one is cut so the base stays a valid UIDL.
    size_t room = kMaxBaseLength > base.size() ? kMaxBaseLength - base.size() : 0;
    base += short_host(host.empty() ? local_host() : host, room);
    return base + ",S=" + std::to_string(size) + ",W=" + std::to_string(vsize);
}

bool made_before(std::string_view a, std::string_view b) {
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (!digit(a[i]) || !digit(b[j])) {
            if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
            ++i, ++j;
            continue;
        }
        // Leading zeros do not count; then the longer run is the larger number, or the first digit that differs decides.
        size_t ia = i, jb = j;
        while (ia < a.size() && a[ia] == '0') ++ia;
        while (jb < b.size() && b[jb] == '0') ++jb;
        size_t ea = ia, eb = jb;
        while (ea < a.size() && digit(a[ea])) ++ea;
        while (eb < b.size() && digit(b[eb])) ++eb;
        if (ea - ia != eb - jb) return ea - ia < eb - jb;
        if (int c = a.substr(ia, ea - ia).compare(b.substr(jb, eb - jb)); c != 0) return c < 0;
        i = ea, j = eb;
    }
    if (a.size() - i != b.size() - j) return a.size() - i < b.size() - j;
    return a < b;  // equal but for leading zeros: any fixed order will do
}

std::string unique_base(std::string_view host) {
    std::string name = unique_name(0, 0, host);
    return name.substr(0, name.find(','));
}

bool has_base(std::string_view name, std::string_view base) {
    return name.starts_with(base) && (name.size() == base.size() || name[base.size()] == ',' || name[base.size()] == ':');
}

Result<std::optional<std::string>> find_base(const std::string& maildir, std::string_view base) {
    for (const char* sub : {"new", "cur"}) {
        std::string dir = maildir + "/" + sub;
        std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
        if (!d) {
            if (errno == ENOENT) continue;
            return sys_error("cannot open " + dir);
        }
        for (;;) {
            errno = 0;
            dirent* de = readdir(d.get());
            if (!de) break;
            std::string_view name = de->d_name;
            if (has_base(name, base))
                return std::optional<std::string>(std::string(sub) + "/" + std::string(name));
        }
        if (errno != 0) return sys_error("cannot read " + dir);
    }
    return std::optional<std::string>();
}

Result<std::string> account_maildir(const std::string& mail_dir, std::string_view address) {
    std::string addr = normalize_address(address);
    std::string local = local_part_of(addr), domain = domain_of(addr);
    auto unsafe = [](const std::string& s) {
        return s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos ||
               s.find('\0') != std::string::npos;
    };
    if (unsafe(local) || unsafe(domain))
        return make_error(0, "", "address \"" + std::string(address) + "\" cannot name a Maildir");
    return mail_dir + "/" + domain + "/" + local + "/Maildir";
}

Result<void> ensure(const std::string& maildir) {
    // Parents first: <mail_dir>/<domain>/<local> may not exist for a new account.
    for (size_t slash = maildir.find('/', 1); slash != std::string::npos; slash = maildir.find('/', slash + 1))
        if (auto r = make_dir(maildir.substr(0, slash)); !r) return r;
    if (auto r = make_dir(maildir); !r) return r;
    for (const char* sub : kSubdirs)
        if (auto r = make_dir(maildir + "/" + sub); !r) return r;
    return {};
}

namespace {
bool& unnamed_tmp_files() {
    static bool on = true;
    return on;
}

// The message file in tmp/, unnamed where the kernel allows (DurableFile::create_unnamed): its one
// name is the link into new/ or cur/, so tmp/ gains and loses no entry (the fsync of a new file
// writes its directory too) and a crash leaves no tmp/ file behind. Empty: `name` is taken.
Result<std::optional<DurableFile>> create_tmp(const std::string& maildir, const std::string& name) {
    if (unnamed_tmp_files()) {
        auto file = DurableFile::create_unnamed(maildir + "/tmp", 0600);
        if (!file || *file) return file;
    }
    return DurableFile::create(maildir + "/tmp/" + name, 0600);
}
}  // namespace

void use_unnamed_tmp_files(bool on) { unnamed_tmp_files() = on; }

Result<Delivery> Delivery::begin(const std::string& maildir, std::span<const std::string_view> parts,
                                 std::string_view host) {
    Delivery d;
    d.maildir_ = maildir;
    d.size_ = total_size(parts);
    uint64_t vsize = total_crlf_size(parts);
    for (int attempt = 0; attempt < 5 && !d.file_; ++attempt) {
        d.name_ = unique_name(d.size_, vsize, host);
        // From here on the destructor removes the tmp/ file.
        auto file = create_tmp(maildir, d.name_);
        if (!file) return file.error();
        d.file_ = std::move(file.value());
    }
    if (!d.file_) return make_error(0, "", "cannot find a unique name in " + maildir + "/tmp");
    d.tmp_name_ = d.name_;
    for (auto part : parts)
        if (auto r = d.file_->write(part); !r) return r.error();
    if (auto r = d.file_->sync(); !r) return r.error();
    return d;
}

Result<Delivery> Delivery::create(const std::string& maildir, std::string_view host) {
    Delivery d;
    d.maildir_ = maildir;
    for (int attempt = 0; attempt < 5 && !d.file_; ++attempt) {
        d.tmp_name_ = unique_base(host);
        auto file = create_tmp(maildir, d.tmp_name_);
        if (!file) return file.error();
        d.file_ = std::move(file.value());
    }
    if (!d.file_) return make_error(0, "", "cannot find a unique name in " + maildir + "/tmp");
    return d;
}

Result<Delivery> Delivery::create_named(const std::string& maildir, const std::string& base) {
    Delivery d;
    d.maildir_ = maildir;
    d.tmp_name_ = base;
    auto file = create_tmp(maildir, base);
    if (!file) return file.error();
    if (!*file) return make_error(0, "", maildir + "/tmp/" + base + " exists");
    d.file_ = std::move(file.value());
    return d;
}

Result<void> Delivery::append(std::string_view data) {
    if (!file_ || !name_.empty()) return make_error(0, "", "Maildir delivery not open for writing");
    if (auto r = file_->write(data); !r) return r;
    size_ += data.size();
    vsize_ += crlf_size_of_piece(data, last_);
    return {};
}

Result<size_t> Delivery::read_at(uint64_t at, char* buf, size_t len) const {
    if (!file_) return make_error(0, "", "Maildir delivery already finished");
    for (;;) {
        ssize_t n = pread(file_->fd(), buf, len, static_cast<off_t>(at));
        if (n >= 0) return static_cast<size_t>(n);
        if (errno != EINTR) return sys_error("read " + file_->temp_path());
    }
}

Result<Fd> Delivery::reader() const {
    if (!file_) return make_error(0, "", "Maildir delivery already finished");
    Fd fd(fcntl(file_->fd(), F_DUPFD_CLOEXEC, 0));
    if (!fd.valid()) return sys_error("dup " + file_->temp_path());
    return fd;
}

Result<void> Delivery::sync() {
    if (!file_) return make_error(0, "", "Maildir delivery already finished");
    if (auto r = file_->sync(); !r) return r;
    name_ = tmp_name_ + ",S=" + std::to_string(size_) + ",W=" + std::to_string(vsize_);
    if (!flags_.empty()) name_ += ":2," + flags_;
    return {};
}

Delivery::Delivery(Delivery&& o) noexcept
    : maildir_(std::move(o.maildir_)),
      name_(std::move(o.name_)),
      tmp_name_(std::move(o.tmp_name_)),
      flags_(std::move(o.flags_)),
      size_(o.size_),
      vsize_(o.vsize_),
      last_(o.last_),
      linked_(std::exchange(o.linked_, false)),
      file_(std::exchange(o.file_, std::nullopt)) {}

Delivery& Delivery::operator=(Delivery&& o) noexcept {
    if (this != &o) {
        maildir_ = std::move(o.maildir_);
        name_ = std::move(o.name_);
        tmp_name_ = std::move(o.tmp_name_);
        flags_ = std::move(o.flags_);
        size_ = o.size_;
        vsize_ = o.vsize_;
        last_ = o.last_;
        linked_ = std::exchange(o.linked_, false);
        file_ = std::exchange(o.file_, std::nullopt);  // an uncommitted file of ours is discarded
    }
    return *this;
}

Delivery::~Delivery() = default;  // an uncommitted DurableFile removes its tmp/ name

// link(2) rather than rename(2), as the spec says: it fails instead of replacing an existing file.
Result<std::string> Delivery::commit(std::string* note) {
    auto dir = link();
    if (!dir) return dir.error();
    return settle(fsync_dir(*dir), note);
}

Result<std::string> Delivery::link() {
    if (!file_ || linked_) return make_error(0, "", "Maildir delivery already finished");
    if (name_.empty()) return make_error(0, "", "Maildir delivery not synced before its commit");
    std::string sub = flags_.empty() ? "/new" : "/cur";
    std::string to = maildir_ + sub + "/" + name_;
    auto made = file_->link_to(to);
    if (!made) return made.error();
    if (!*made) return make_error(0, "", "cannot link " + file_->temp_path() + " to " + to, "File exists");
    linked_ = true;
    return maildir_ + sub;
}

// The tmp/ name goes only after new/ is durable (a leftover one is harmless: cleanup_tmp).
Result<std::string> Delivery::settle(const Result<void>& dir_synced, std::string* note) {
    if (!file_ || !linked_) return make_error(0, "", "Maildir delivery not linked before it settles");
    linked_ = false;
    file_.reset();  // removes the tmp/ name and closes the file
    if (dir_synced) return name_;
    // The link is not known to be durable, and a 4xx must not leave a copy that a retry would
    // repeat: the name goes again. Unless a reader has taken it already (to cur/, or deleted it):
    // then it has been seen, which is a delivery.
    std::string sub = flags_.empty() ? "/new" : "/cur";
    std::string to = maildir_ + sub + "/" + name_;
    if (unlink(to.c_str()) != 0 && errno == ENOENT) {
        if (note) *note = "the fsync of new/ failed (" + dir_synced.error().what() + "), but a reader had already taken " + name_ + ": delivered";
        return name_;
    }
    (void)fsync_dir(maildir_ + sub);  // best effort: the unlink too should reach the disk
    return dir_synced.error();
}

Result<std::string> deliver(const std::string& maildir, std::string_view message, std::string_view host) {
    if (auto r = ensure(maildir); !r) return r.error();
    std::string_view parts[] = {message};
    auto d = Delivery::begin(maildir, parts, host);
    if (!d) return d.error();
    return d->commit();
}

namespace {

// The source written afresh under `name` in `to`/cur/ (file systems without hard links across the
// folders): written, fsync'd, given the source's mtime, linked into cur/.
Result<void> write_copy(const std::string& to, const CopySource& src, const std::string& name) {
    Fd out(::open((to + "/tmp/" + name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!out.valid()) return sys_error("cannot create " + to + "/tmp/" + name);
    char buf[65536];
    Result<void> r;
    for (off_t at = 0;;) {
        ssize_t n = ::pread(src.fd, buf, sizeof buf, at);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) r = sys_error("cannot read the message to copy");
        if (n <= 0) break;
        if (!write_all(out.get(), buf, static_cast<size_t>(n))) {
            r = sys_error("cannot write " + to + "/tmp/" + name);
            break;
        }
        at += n;
    }
    struct stat st {};
    if (r && ::fstat(src.fd, &st) == 0) {
        timespec times[2] = {st.st_mtim, st.st_mtim};
        (void)::futimens(out.get(), times);
    }
    if (r && ::fsync(out.get()) != 0) r = sys_error("cannot fsync " + to + "/tmp/" + name);
    std::string final_name = to + "/cur/" + name + ":2," + src.letters;
    if (r && ::link((to + "/tmp/" + name).c_str(), final_name.c_str()) != 0) r = sys_error("cannot link " + final_name);
    (void)::unlink((to + "/tmp/" + name).c_str());
    return r;
}

}  // namespace

Result<std::vector<std::string>> copy_messages(const std::string& to, std::span<const CopySource> sources,
                                               std::string_view host) {
    std::vector<std::string> made;
    auto undo = [&](Error e) -> Result<std::vector<std::string>> {
        for (const auto& n : made) (void)::unlink((to + "/cur/" + n).c_str());
        return e;
    };
    Fd cur(::open((to + "/cur").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cur.valid()) return sys_error("cannot open " + to + "/cur");
    bool links = true;  // until the file system refuses one
    for (const auto& src : sources) {
        auto info = parse_name(src.name);
        uint64_t size = 0, vsize = 0;
        if (info && info->size && info->vsize) {
            size = *info->size;
            vsize = *info->vsize;
        } else {  // a name another program gave: the sizes are read from the file
            char buf[65536], prev = '\0';
            for (off_t at = 0;;) {
                ssize_t n = ::pread(src.fd, buf, sizeof buf, at);
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) return undo(sys_error("cannot read the message to copy"));
                if (n == 0) break;
                size += static_cast<uint64_t>(n);
                vsize += crlf_size_of_piece(std::string_view(buf, static_cast<size_t>(n)), prev);
                at += n;
            }
        }
        std::string unique = unique_name(size, vsize, host);
        std::string name = unique + ":2," + src.letters;
        if (links) {
            // The open file itself is linked: it may have been renamed by a reader meanwhile.
            std::string proc = "/proc/self/fd/" + std::to_string(src.fd);
            if (::linkat(AT_FDCWD, proc.c_str(), cur.get(), name.c_str(), AT_SYMLINK_FOLLOW) == 0) {
                made.push_back(std::move(name));
                continue;
            }
            if (errno != EXDEV && errno != EPERM && errno != ENOENT && errno != EMLINK && errno != ENOSYS)
                return undo(sys_error("cannot link a copy into " + to + "/cur"));
            links = false;
        }
        if (auto r = write_copy(to, src, unique); !r) return undo(r.error());
        made.push_back(std::move(name));
    }
    if (!made.empty() && ::fsync(cur.get()) != 0) return undo(sys_error("cannot fsync " + to + "/cur"));
    return made;
}

Result<std::vector<Entry>> list(const std::string& maildir) {
    struct stat st;
    if (stat(maildir.c_str(), &st) != 0) {
        if (errno == ENOENT) return std::vector<Entry>{};  // no mail delivered yet
        return sys_error("cannot stat " + maildir);
    }
    std::vector<Entry> out;
    scan_dir(maildir, "new", out);
    scan_dir(maildir, "cur", out);
    std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
        return a.mtime_ns != b.mtime_ns ? a.mtime_ns < b.mtime_ns : made_before(a.name, b.name);
    });
    return out;
}

size_t cleanup_tmp(const std::string& maildir, std::chrono::seconds age) {
    std::string dir = maildir + "/tmp";
    std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
    if (!d) return 0;
    time_t cutoff = time(nullptr) - static_cast<time_t>(age.count());
    size_t removed = 0;
    while (dirent* de = readdir(d.get())) {
        if (de->d_name[0] == '.') continue;
        std::string path = dir + "/" + de->d_name;
        struct stat st;
        if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (st.st_atime >= cutoff || st.st_mtime >= cutoff) continue;
        if (unlink(path.c_str()) == 0) ++removed;
    }
    return removed;
}

}  // namespace ferry::maildir
