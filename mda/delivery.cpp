// One recipient's delivery: account lookup, the quota check, and the durable Maildir write.
#include "mda/delivery.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <memory>

#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/store/folders.hpp"
#include "common/store/index.hpp"
#include "common/store/maildir.hpp"
#include "mda/auto_reply.hpp"
#include "mda/sieve_delivery.hpp"
#include "mda/trace_headers.hpp"

namespace ferry::mda {

namespace {

constexpr time_t kTmpCleanupInterval = 3600;    // per Maildir, checked on delivery (sooner when
                                                // maildir_tmp_max_age is shorter)
constexpr size_t kMaxRememberedMaildirs = 10000; // bounds cleaned_; forgetting only means an early scan

Error disk_error(const Error& e) { return make_error(451, "4.3.0", "Temporary failure writing the mailbox", e.what()); }

// Names of the subdirectories of `dir` (dot entries skipped).
std::vector<std::string> subdirs(const std::string& dir) {
    std::vector<std::string> out;
    std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
    if (!d) return out;
    while (dirent* de = readdir(d.get()))
        if (de->d_name[0] != '.' && (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN)) out.emplace_back(de->d_name);
    return out;
}

// Adds the messages of `maildir`/`sub` to `u`.
Result<void> add_usage(const std::string& maildir, const char* sub, Deliverer::Usage& u) {
    std::string dir = maildir + "/" + sub;
    std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
    if (!d) {
        if (errno == ENOENT) return {};
        return sys_error("cannot open " + dir);
    }
    // readdir(3) tells its end from an error only by errno, and stat(2) below may fail and leave one
    // behind: errno is cleared right before every call.
    for (;;) {
        errno = 0;
        dirent* de = readdir(d.get());
        if (!de) break;
        if (de->d_name[0] == '.') continue;
        auto info = maildir::parse_name(de->d_name);
        uint64_t size = 0;
        if (info && info->size) {
            size = *info->size;
        } else {
            struct stat st;
            std::string path = dir + "/" + de->d_name;
            if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // moved meanwhile
            size = static_cast<uint64_t>(st.st_size);
        }
        u.bytes += size;
        u.messages += 1;
    }
    if (errno != 0) return sys_error("cannot read " + dir);
    return {};
}

}  // namespace

Deliverer::Deliverer(const Config& config, AccountStore& accounts)
    : config_(config),
      accounts_(accounts),
      mail_dir_(config.str("mail_dir")),
      host_(my_hostname(config)),
      tmp_max_age_(config.duration("maildir_tmp_max_age")),
      dsn_allowance_(config.size("mda_quota_dsn_allowance")),
      attachments_(mail::AttachmentSettings::from(config)),
      sieve_(std::make_unique<SieveDelivery>(config)),
      auto_reply_(std::make_unique<AutoReply>(config)) {}

Deliverer::~Deliverer() = default;

Result<Account> Deliverer::find_account(std::string_view address) {
    std::string addr = normalize_address(address);
    auto a = recipient_account(accounts_, addr);
    if (!a) return make_error(451, "4.3.0", "Temporary failure looking up the recipient", a.error().what());
    if (!a.value()) return make_error(550, "5.1.1", "No such user here", addr);
    return std::move(*a.value());
}

Result<std::string> Deliverer::prepare(const Account& account) {
    auto dir = maildir::account_maildir(mail_dir_, account.address);
    if (!dir) return make_error(550, "5.1.1", "Mailbox name not allowed", dir.error().what());
    // A new account gets its default folders (ferry-mailstore(5)) along with the Maildir.
    if (auto r = store::ensure_account(*dir); !r) return disk_error(r.error());
    cleanup_tmp_if_due(*dir);
    return dir;
}

Result<Deliverer::Usage> Deliverer::usage(const std::string& maildir) {
    Usage u;
    for (const char* sub : {"new", "cur"})
        if (auto r = add_usage(maildir, sub, u); !r) return r.error();
    return u;
}

std::optional<Error> Deliverer::over_quota(const Account& account, const Usage& used, uint64_t size, bool temporary) {
    std::string why;
    if (account.quota_bytes && (size > account.quota_bytes || used.bytes > account.quota_bytes - size))
        why = std::to_string(used.bytes) + " bytes used, " + std::to_string(size) + " more would exceed the quota of " +
              std::to_string(account.quota_bytes);
    else if (account.quota_messages && used.messages >= account.quota_messages)
        why = std::to_string(used.messages) + " messages, the quota is " + std::to_string(account.quota_messages);
    else
        return std::nullopt;
    // RFC 3463 5.2.2 "mailbox full"; permanent (the sender gets a bounce) unless the administrator
    // prefers the queue to keep the message until the owner makes room.
    if (temporary) return make_error(452, "4.2.2", "Mailbox full", account.address + ": " + why);
    return make_error(552, "5.2.2", "Mailbox full", account.address + ": " + why);
}

// Usage is counted afresh for each delivery to a mailbox with a quota: the names carry S=, so this
// reads two directories and opens no file; mailboxes without a quota cost nothing.
Result<void> Deliverer::check_quota(const Account& account, const std::string& maildir, uint64_t size, bool null_sender) {
    if (!account.quota_bytes && !account.quota_messages) return {};
    auto used = usage(maildir);
    if (!used) return disk_error(used.error());
    auto refusal = over_quota(account, *used, size, config_.boolean("quota_exceeded_temporary"));
    if (!refusal || !null_sender) return refusal ? Result<void>(*refusal) : Result<void>();
    // A null-sender message is a notice about mail the owner sent: a bounce of it would go nowhere.
    // A small one is stored over quota; a larger one waits in the queue for room (ferry-mda(8)).
    if (size <= dsn_allowance_) {
        log::info("%s: over quota, but a delivery status notification of %llu bytes is stored anyway (%s)",
                  account.address.c_str(), static_cast<unsigned long long>(size), refusal->detail.c_str());
        return {};
    }
    return make_error(452, "4.2.2", "Mailbox full", refusal->detail + "; a null-sender message larger than mda_quota_dsn_allowance waits");
}

Result<std::string> Deliverer::write(const std::string& qid, const Account& account, const std::string& maildir,
                                     std::string_view sender, std::string_view message) {
    auto copy = start(account, maildir, sender);
    if (!copy) return copy.error();
    if (auto r = copy->append(message); !r) return r.error();
    return finish(qid, account, maildir, *copy);
}

Result<Deliverer::Copy> Deliverer::start(const Account& account, const std::string& maildir, std::string_view sender,
                                         const std::string& base) {
    auto file = base.empty() ? maildir::Delivery::create(maildir, host_) : maildir::Delivery::create_named(maildir, base);
    if (!file) return disk_error(file.error());
    Copy copy(std::move(file.value()), sender.empty());
    if (auto r = copy.file_.append(delivery_headers(sender, account.address)); !r) return disk_error(r.error());
    copy.message_start_ = copy.file_.size();
    return copy;
}

Result<void> Deliverer::Copy::append(std::string_view data) {
    if (data.empty()) return {};
    if (auto r = file_.append(data); !r) return disk_error(r.error());
    last_ = data.back();
    return {};
}

Result<Deliverer::Source> Deliverer::Copy::source() const {
    auto fd = file_.reader();
    if (!fd) return disk_error(fd.error());
    return Source{std::move(fd.value()), message_start_, size()};
}

Result<void> Deliverer::Copy::append_message_of(const Source& from, uint64_t skip) {
    char buf[65536];
    for (uint64_t at = from.start + skip; at < from.end;) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof buf, from.end - at));
        ssize_t n = pread(from.fd.get(), buf, want, static_cast<off_t>(at));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return disk_error(sys_error("read back a copy of the message"));
        if (n == 0) return disk_error(make_error(0, "", "unexpected end of file reading a copy back"));
        if (auto r = append({buf, static_cast<size_t>(n)}); !r) return r;
        at += static_cast<uint64_t>(n);
    }
    return {};
}

Result<std::string> Deliverer::finish(const std::string& qid, const Account& account, const std::string& maildir,
                                      Copy& copy, std::string* note) {
    if (auto r = seal(qid, account, maildir, copy); !r) return r.error();
    auto name = copy.file_.commit(note);
    if (!name) return disk_error(name.error());
    // The message is delivered; a failing index only delays its UID to the next sync.
    if (auto uid = store::append_delivered(maildir, *name); !uid)
        log::warnx("%s: %s: no UID at delivery: %s", qid.c_str(), maildir.c_str(), uid.error().what().c_str());
    return name;
}

Result<void> Deliverer::seal(const std::string& qid, const Account& account, const std::string& maildir, Copy& copy) {
    // A last line without LF gets one: a message is lines (RFC 5322 2.1), and S=, W= and what POP3
    // sends (it ends every line) then agree.
    if (copy.last_ != '\n')
        if (auto r = copy.append("\n"); !r) return r.error();
    if (auto r = check_quota(account, maildir, copy.size(), copy.null_sender_); !r) return r.error();
    if (auto r = copy.file_.sync(); !r) return disk_error(r.error());
    test_pause_point(config_, "mda-after-tmp", qid);
    return {};
}

Result<std::string> Deliverer::link(Copy& copy) {
    auto dir = copy.file_.link();
    if (!dir) return disk_error(dir.error());
    return dir;
}

Result<std::string> Deliverer::settle(Copy& copy, const Result<void>& dir_synced, std::string* note) {
    auto name = copy.file_.settle(dir_synced, note);
    if (!name) return disk_error(name.error());
    return name;
}

void Deliverer::cleanup_tmp_if_due(const std::string& maildir) {
    time_t now = time(nullptr);
    time_t interval = std::clamp<time_t>(static_cast<time_t>(tmp_max_age_.count()), 1, kTmpCleanupInterval);
    auto it = cleaned_.find(maildir);
    if (it != cleaned_.end() && now - it->second < interval) return;
    if (cleaned_.size() >= kMaxRememberedMaildirs) cleaned_.clear();
    cleaned_[maildir] = now;
    if (size_t n = maildir::cleanup_tmp(maildir, tmp_max_age_))
        log::info("removed %zu stale files from %s/tmp", n, maildir.c_str());
}

size_t Deliverer::cleanup_all_tmp() {
    size_t total = 0;
    for (const auto& domain : subdirs(mail_dir_)) {
        for (const auto& local : subdirs(mail_dir_ + "/" + domain)) {
            std::string md = mail_dir_ + "/" + domain + "/" + local + "/Maildir";
            if (size_t n = maildir::cleanup_tmp(md, tmp_max_age_)) {
                log::info("removed %zu stale files from %s/tmp", n, md.c_str());
                total += n;
            }
            cleaned_[md] = time(nullptr);
            if (cleaned_.size() >= kMaxRememberedMaildirs) cleaned_.clear();
        }
    }
    return total;
}

}  // namespace ferry::mda
