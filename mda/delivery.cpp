// One recipient's delivery: account lookup, the quota hook, and the durable Maildir write.
#include "mda/delivery.hpp"

#include <dirent.h>

#include <memory>

#include "common/daemon.hpp"
#include "common/log.hpp"
#include "common/maildir.hpp"
#include "mda/trace_headers.hpp"

namespace ferry::mda {

namespace {

constexpr time_t kTmpCleanupInterval = 3600;    // per Maildir, checked on delivery
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

}  // namespace

Deliverer::Deliverer(const Config& config, AccountStore& accounts)
    : config_(config), accounts_(accounts), mail_dir_(config.str("mail_dir")), host_(my_hostname(config)) {}

Result<Account> Deliverer::find_account(std::string_view address) {
    std::string addr = normalize_address(address);
    auto a = accounts_.account(addr);
    if (!a) return make_error(451, "4.3.0", "Temporary failure looking up the recipient", a.error().what());
    if (!a.value()) return make_error(550, "5.1.1", "No such user here", addr);
    return std::move(*a.value());
}

Result<std::string> Deliverer::prepare(const Account& account) {
    auto dir = maildir::account_maildir(mail_dir_, account.address);
    if (!dir) return make_error(550, "5.1.1", "Mailbox name not allowed", dir.error().what());
    if (auto r = maildir::ensure(*dir); !r) return disk_error(r.error());
    cleanup_tmp_if_due(*dir);
    return dir;
}

Result<void> Deliverer::check_quota(const Account& account, const std::string& maildir, uint64_t size) {
    // Quotas (Account::quota_bytes, quota_messages) are enforced in a later change: this is the one
    // place that refuses, with 552 5.2.2 mailbox full (452 4.2.2 when quota_exceeded_temporary).
    (void)account;
    (void)maildir;
    (void)size;
    return {};
}

Result<std::string> Deliverer::write(const std::string& qid, const Account& account, const std::string& maildir,
                                     std::string_view sender, std::string_view message) {
    std::string added = delivery_headers(sender, account.address);
    if (auto r = check_quota(account, maildir, added.size() + message.size()); !r) return r.error();
    std::string_view parts[] = {added, message};
    auto d = maildir::Delivery::begin(maildir, parts, host_);
    if (!d) return disk_error(d.error());
    test_pause_point(config_, "mda-after-tmp", qid);
    auto name = d->commit();
    if (!name) return disk_error(name.error());
    return name;
}

void Deliverer::cleanup_tmp_if_due(const std::string& maildir) {
    time_t now = time(nullptr);
    auto it = cleaned_.find(maildir);
    if (it != cleaned_.end() && now - it->second < kTmpCleanupInterval) return;
    if (cleaned_.size() >= kMaxRememberedMaildirs) cleaned_.clear();
    cleaned_[maildir] = now;
    if (size_t n = maildir::cleanup_tmp(maildir)) log::info("removed %zu stale files from %s/tmp", n, maildir.c_str());
}

size_t Deliverer::cleanup_all_tmp() {
    size_t total = 0;
    for (const auto& domain : subdirs(mail_dir_)) {
        for (const auto& local : subdirs(mail_dir_ + "/" + domain)) {
            std::string md = mail_dir_ + "/" + domain + "/" + local + "/Maildir";
            if (size_t n = maildir::cleanup_tmp(md)) {
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
