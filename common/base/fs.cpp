// Filesystem durability helpers shared by the spool, the Maildir store and the account database.
#include "common/base/fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace ferry {

Result<void> fsync_dir(const std::string& dir) {
    Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return sys_error("cannot open directory " + dir);
    if (fsync(fd.get()) != 0) return sys_error("fsync " + dir);
    return {};
}

Result<void> write_all(int fd, const char* data, size_t len) {
    while (len > 0) {
        ssize_t n = ::write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return sys_error("write");
        }
        data += n;
        len -= static_cast<size_t>(n);
    }
    return {};
}

bool same_file(int fd, const std::string& path) {
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

std::string dir_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

Result<std::optional<DurableFile>> DurableFile::create(std::string temp_path, mode_t mode, Existing existing) {
    // A leftover is removed rather than truncated, so the new file gets `mode` and no old owner.
    if (existing == Existing::replace && unlink(temp_path.c_str()) != 0 && errno != ENOENT)
        return sys_error("cannot remove " + temp_path);
    // Read-write: a Maildir delivery copies the message it is still writing (maildir::Delivery::read_at).
    Fd fd(open(temp_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!fd.valid()) {
        if (errno == EEXIST) return std::optional<DurableFile>{};
        return sys_error("cannot create " + temp_path);
    }
    return std::optional<DurableFile>(DurableFile(std::move(fd), std::move(temp_path)));
}

Result<std::optional<DurableFile>> DurableFile::create_unnamed(const std::string& dir, mode_t mode) {
    static const bool proc = ::access("/proc/self/fd", X_OK) == 0;
    if (!proc) return std::optional<DurableFile>{};
    Fd fd(open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, mode));
    if (!fd.valid()) {
        // EISDIR: a kernel without O_TMPFILE took it for O_DIRECTORY; EOPNOTSUPP: the file system.
        if (errno == EISDIR || errno == EOPNOTSUPP || errno == EINVAL) return std::optional<DurableFile>{};
        return sys_error("cannot create a file in " + dir);
    }
    DurableFile f(std::move(fd), dir + "/(unnamed)");
    f.unnamed_ = true;
    return std::optional<DurableFile>(std::move(f));
}

DurableFile::DurableFile(DurableFile&& o) noexcept
    : fd_(std::move(o.fd_)), temp_(std::exchange(o.temp_, {})), synced_(o.synced_), unnamed_(o.unnamed_) {}

DurableFile& DurableFile::operator=(DurableFile&& o) noexcept {
    if (this != &o) {
        discard();
        fd_ = std::move(o.fd_);
        temp_ = std::exchange(o.temp_, {});
        synced_ = o.synced_;
        unnamed_ = o.unnamed_;
    }
    return *this;
}

Result<bool> DurableFile::link_to(const std::string& path) const {
    if (temp_.empty()) return make_error(0, "", "link of a file that is no longer pending: " + path);
    int r = unnamed_ ? linkat(AT_FDCWD, ("/proc/self/fd/" + std::to_string(fd_.get())).c_str(), AT_FDCWD,
                              path.c_str(), AT_SYMLINK_FOLLOW)
                     : link(temp_.c_str(), path.c_str());
    if (r == 0) return true;
    if (errno == EEXIST) return false;
    return sys_error("link " + temp_ + " to " + path);
}

Result<void> DurableFile::write(std::string_view data) {
    synced_ = false;
    auto r = write_all(fd_.get(), data.data(), data.size());
    if (!r) return make_error(0, "", "write " + temp_, r.error().detail);
    return {};
}

Result<void> DurableFile::write_at(std::string_view data, off_t offset) {
    synced_ = false;
    while (!data.empty()) {
        ssize_t n = pwrite(fd_.get(), data.data(), data.size(), offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return sys_error("write " + temp_, n < 0 ? errno : EIO);
        data.remove_prefix(static_cast<size_t>(n));
        offset += n;
    }
    return {};
}

Result<void> DurableFile::sync() {
    if (fsync(fd_.get()) != 0) return sys_error("fsync " + temp_);
    synced_ = true;
    return {};
}

Result<bool> DurableFile::move_temp(std::string temp_path) {
    if (unnamed_) return make_error(0, "", "an unnamed file has no temporary name to move");
    if (link(temp_.c_str(), temp_path.c_str()) != 0) {
        if (errno == EEXIST) return false;
        return sys_error("link " + temp_ + " to " + temp_path);
    }
    unlink(temp_.c_str());
    temp_ = std::move(temp_path);
    return true;
}

Result<bool> DurableFile::publish(const std::string& final_path, Publish how,
                                  const std::function<void()>& published) {
    if (temp_.empty()) return make_error(0, "", "publish of a file that is no longer pending: " + final_path);
    if (!synced_)
        if (auto r = sync(); !r) return r.error();
    if (how == Publish::link) {
        auto linked = link_to(final_path);
        if (!linked || !*linked) return linked;
    }
    if (how == Publish::rename && unnamed_) return make_error(0, "", "an unnamed file cannot be renamed to " + final_path);
    if (how == Publish::rename && rename(temp_.c_str(), final_path.c_str()) != 0)
        return sys_error("rename " + temp_ + " to " + final_path);
    std::string temp = std::exchange(temp_, {});  // published: discard() no longer removes anything
    auto synced = fsync_dir(dir_of(final_path));
    if (published) published();
    // The temporary name goes while the file (and any lock on it) is still open.
    if (how == Publish::link && !unnamed_) unlink(temp.c_str());
    fd_.reset();
    if (!synced) return synced.error();
    return true;
}

void DurableFile::discard() {
    std::string temp = std::exchange(temp_, {});
    if (!temp.empty() && !unnamed_) unlink(temp.c_str());  // before a lock goes with the fd
    fd_.reset();
}

Result<void> write_file_durably(const std::string& path, std::string_view data, mode_t mode) {
    auto file = DurableFile::create(path + ".tmp", mode, DurableFile::Existing::replace);
    if (!file) return file.error();
    if (!file->has_value()) return sys_error("cannot create " + path + ".tmp", EEXIST);  // a racing writer
    if (auto r = (*file)->write(data); !r) return r;
    auto published = (*file)->publish(path, DurableFile::Publish::rename);
    if (!published) return published.error();
    return {};
}

Result<std::optional<std::string>> read_small_file(const std::string& path, size_t max_size) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        if (errno == ENOENT) return std::optional<std::string>();
        return sys_error("open " + path);
    }
    std::string out;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("read " + path);
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > max_size) return make_error(0, "", path + " is larger than " + std::to_string(max_size) + " octets");
    }
    return std::optional<std::string>(std::move(out));
}

}  // namespace ferry
