// One POP3 session's view of a Maildir: the exclusive lock, the snapshot at login, marks, and UPDATE.
#include "popd/maildrop.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_set>

#include "common/base/fs.hpp"
#include "common/base/hash.hpp"
#include "common/base/log.hpp"
#include "common/store/index.hpp"
#include "common/store/maildir.hpp"
#include "popd/response.hpp"

namespace ferry::pop3 {

namespace {

// flock, not fcntl locks: fcntl locks belong to the process, so two sessions of one popd would share one.
Result<Fd> lock_maildir(const std::string& maildir) {
    std::string path = maildir + "/" + kLockFile;
    Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) return pop_error(kSysTemp, "cannot lock the maildrop", "open " + path + ": " + std::strerror(errno));
    for (;;) {
        if (flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return fd;
        if (errno == EINTR) continue;
        if (errno == EWOULDBLOCK) return pop_error(kInUse, "maildrop already locked by another POP3 session");
        return pop_error(kSysTemp, "cannot lock the maildrop", "flock " + path + ": " + std::strerror(errno));
    }
}

Result<std::string> read_all(int fd) {
    std::string data;
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size > 0) data.reserve(static_cast<size_t>(st.st_size));
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("read");
        if (n == 0) return data;
        data.append(buf, static_cast<size_t>(n));
    }
}

// `name` is the file of the message with base name `base`: the base followed by nothing, ',' or ':'.
}  // namespace

std::string uidl_for(std::string_view base) {
    bool valid = !base.empty() && base.size() <= kMaxUidlLength &&
                 std::all_of(base.begin(), base.end(), [](char c) { return c >= 0x21 && c <= 0x7E; });
    if (valid) return std::string(base);
    char hashed[18];
    std::snprintf(hashed, sizeof hashed, "H%016llx", static_cast<unsigned long long>(fnv1a64(base)));
    return hashed;
}

Result<Maildrop> Maildrop::open(const std::string& maildir, LockSet& locks) {
    if (locks.contains(maildir)) return pop_error(kInUse, "maildrop already locked by another POP3 session");
    auto found = scan(maildir);
    if (!found) return found.error();
    return adopt(std::move(found.value()), locks);
}

Result<MaildropScan> Maildrop::scan(const std::string& maildir) {
    if (auto r = maildir::ensure(maildir); !r) return pop_error(kSysTemp, "cannot open the maildrop", r.error().what());
    auto fd = lock_maildir(maildir);
    if (!fd) return fd.error();
    auto entries = maildir::list(maildir);
    if (!entries) return pop_error(kSysTemp, "cannot read the maildrop", entries.error().what());
    MaildropScan out{maildir, std::move(fd.value()), {}};
    out.messages.reserve(entries->size());
    // The scan reads new/ then cur/: a message moved in between shows up twice; keep the first.
    std::unordered_set<std::string> seen;
    for (auto& e : *entries) {
        if (!seen.insert(e.info.base).second) continue;
        // A file without a final LF gets one line end more on the wire (MessageEncoder::finish).
        std::string uidl = uidl_for(e.info.base);
        out.messages.push_back(MaildropMessage{e.info.base, std::move(uidl), e.path, e.vsize + e.unterminated});
    }
    return out;
}

Result<Maildrop> Maildrop::adopt(MaildropScan scan, LockSet& locks) {
    // The flock already excludes a second session; the set only mirrors it.
    if (!locks.try_add(scan.maildir)) return pop_error(kInUse, "maildrop already locked by another POP3 session");
    Maildrop drop(std::move(scan.maildir), locks, std::move(scan.lock));
    drop.messages_ = std::move(scan.messages);
    return drop;
}

Maildrop::Maildrop(Maildrop&& o) noexcept
    : maildir_(std::move(o.maildir_)), locks_(std::exchange(o.locks_, nullptr)), lock_fd_(std::move(o.lock_fd_)),
      messages_(std::move(o.messages_)) {}

Maildrop::~Maildrop() {
    if (locks_) locks_->remove(maildir_);
    // lock_fd_ closes after this body: the flock goes with it.
}

MaildropMessage* Maildrop::find(uint64_t number) {
    if (number == 0 || number > messages_.size()) return nullptr;
    MaildropMessage& m = messages_[number - 1];
    return m.deleted ? nullptr : &m;
}

std::pair<size_t, uint64_t> Maildrop::totals() const {
    size_t n = 0;
    uint64_t octets = 0;
    for (const auto& m : messages_) {
        if (m.deleted) continue;
        ++n;
        octets += m.vsize;
    }
    return {n, octets};
}

void Maildrop::reset() {
    for (auto& m : messages_) m.deleted = false;
}

std::optional<std::string> Maildrop::locate(const std::string& maildir, const std::string& base) {
    auto found = maildir::find_base(maildir, base);
    if (!found || !found->has_value()) return std::nullopt;
    return maildir + "/" + **found;
}

Result<Fd> Maildrop::open_file(const std::string& maildir, MaildropMessage& m) {
    // Another reader (IMAP) may have renamed it to change flags, or moved it from new/ to cur/.
    for (int attempt = 0; attempt < 3; ++attempt) {
        Fd fd(::open(m.path.c_str(), O_RDONLY | O_CLOEXEC));
        if (fd.valid()) return fd;
        if (errno != ENOENT) return pop_error(kSysTemp, "cannot read the message", sys_error("open " + m.path).what());
        auto now = locate(maildir, m.base);
        if (!now) return pop_error("", "message " + m.uidl + " has been removed by another client");
        m.path = *now;
    }
    return pop_error(kSysTemp, "message keeps moving, try again");
}

Result<std::string> Maildrop::read(MaildropMessage& m) {
    auto fd = open_message(m);
    if (!fd) return fd.error();
    auto data = read_all(fd->get());
    if (!data) return pop_error(kSysTemp, "cannot read the message", data.error().what() + " " + m.path);
    return data;
}

bool Maildrop::remove(MaildropMessage& m) {
    for (int attempt = 0; attempt < 3; ++attempt) {
        if (::unlink(m.path.c_str()) == 0) return true;
        if (errno != ENOENT) {
            log::warn("cannot remove %s", m.path.c_str());
            return false;
        }
        auto now = locate(maildir_, m.base);
        if (!now) return true;  // removed by another client: what DELE asked for
        m.path = *now;
    }
    return false;
}

void Maildrop::sync_index() {
    // The mailbox index learns of the deletions now, so IMAP sessions see them at once; a failure
    // here only leaves that to the next sync of any reader (ferry-mailstore(5)).
    auto ix = store::Index::open(maildir_);
    auto synced = ix ? ix->sync() : Result<store::SyncStats>(ix.error());
    if (!synced) log::warnx("%s: the mailbox index was not updated: %s", maildir_.c_str(), synced.error().what().c_str());
}

UpdateResult Maildrop::commit(bool expire_retrieved) {
    UpdateResult r;
    for (auto& m : messages_) {
        if (!m.deleted && !(expire_retrieved && m.retrieved)) continue;
        if (remove(m)) ++r.removed;
        else ++r.failed;
    }
    if (r.removed > 0) {
        // A removal that a crash undoes only brings a message back; still, make it stick.
        (void)fsync_dir(maildir_ + "/cur");  // best effort: the deletions are done either way
        (void)fsync_dir(maildir_ + "/new");
        sync_index();
    }
    return r;
}

}  // namespace ferry::pop3
