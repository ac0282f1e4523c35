// The account database in Berkeley DB: addresses, the record format, the reader and the rebuild writer.
#include "common/auth/accounts_db.hpp"
#include "common/auth/scram.hpp"

#include <db_cxx.h>
#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <mutex>
#include <thread>

#include "common/program/config.hpp"
#include "common/base/fs.hpp"
#include "common/base/log.hpp"

namespace ferry {

// Without a direct answer, the exact entry is the one that differs from the catch-all. When both
// are equal the expansion comes out the same, except that an account then counts as not forwarded.
Result<std::vector<std::string>> AccountStore::exact_alias(std::string_view address) {
    auto r = alias(address);
    if (!r || address.empty() || address.front() == '@' || r->empty()) return r;
    auto catch_all = alias("@" + domain_of(address));
    if (!catch_all) return catch_all.error();
    if (*catch_all == *r) return std::vector<std::string>{};
    return r;
}

Result<std::optional<Account>> recipient_account(AccountStore& store, std::string_view address) {
    auto exact = store.account(address);
    if (!exact || exact->has_value()) return exact;
    auto base = subaddress_base(address, store.recipient_delimiter());
    if (!base) return exact;
    return store.account(*base);
}

// ---------------------------------------------------------------------------------------------
// Record format

namespace accountdb {

namespace {

std::vector<std::string_view> split_tabs(std::string_view v) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (true) {
        size_t tab = v.find('\t', start);
        out.push_back(v.substr(start, tab == std::string_view::npos ? tab : tab - start));
        if (tab == std::string_view::npos) return out;
        start = tab + 1;
    }
}

bool parse_u64(std::string_view s, uint64_t& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

Error bad_record(const std::string& what) {
    return make_error(451, "4.3.0", "temporary failure in the account database", "bad record: " + what);
}

}  // namespace

std::string domain_key(std::string_view domain) { return "d:" + normalize_address(domain); }
std::string account_key(std::string_view address) { return "a:" + normalize_address(address); }
std::string alias_key(std::string_view address) { return "l:" + normalize_address(address); }

std::string encode_account(const Account& a) {
    // The SCRAM field is last and optional: records written before it read the same.
    return "1\t" + a.password_hash + "\t" + std::to_string(a.quota_bytes) + "\t" + std::to_string(a.quota_messages) +
           (a.scram.empty() ? "" : "\t" + a.scram);
}

Result<Account> decode_account(std::string_view address, std::string_view value) {
    auto f = split_tabs(value);
    if (f.empty() || f[0] != "1") return bad_record("account " + std::string(address) + ": unknown record version");
    Account a;
    a.address = normalize_address(address);
    if ((f.size() != 4 && f.size() != 5) || !parse_u64(f[2], a.quota_bytes) || !parse_u64(f[3], a.quota_messages))
        return bad_record("account " + a.address + ": malformed value");
    a.password_hash = std::string(f[1]);
    if (f.size() == 5 && !sasl::scram_decode(f[4])) return bad_record("account " + a.address + ": malformed SCRAM keys");
    if (f.size() == 5) a.scram = std::string(f[4]);
    return a;
}

std::string encode_targets(const std::vector<std::string>& targets) {
    std::string out = "1";
    for (const auto& t : targets) out += "\t" + t;
    return out;
}

Result<std::vector<std::string>> decode_targets(std::string_view value) {
    auto f = split_tabs(value);
    if (f.empty() || f[0] != "1") return bad_record("alias: unknown record version");
    std::vector<std::string> out;
    for (size_t i = 1; i < f.size(); ++i)
        if (!f[i].empty()) out.emplace_back(f[i]);
    return out;
}

}  // namespace accountdb

// ---------------------------------------------------------------------------------------------
// Berkeley DB handles

namespace {

struct DbCloser {
    void operator()(Db* db) const noexcept {
        db->close(0);  // also required after a failed open, to free the handle's resources
        delete db;
    }
};
using DbPtr = std::unique_ptr<Db, DbCloser>;

void db_errcall(const DbEnv*, const char*, const char* msg) noexcept { log::warnx("berkeley db: %s", msg); }

Error db_error(const std::string& what, int rc) {
    return make_error(451, "4.3.0", "temporary failure in the account database", what + ": " + db_strerror(rc));
}

DbPtr new_db() {
    DbPtr db(new Db(nullptr, DB_CXX_NO_EXCEPTIONS));
    db->set_errcall(db_errcall);
    return db;
}

// No environment and no locking: the file is never changed in place once it has its name.
Result<DbPtr> open_readonly(const std::string& path) {
    DbPtr db = new_db();
    int rc = db->open(nullptr, path.c_str(), nullptr, DB_BTREE, DB_RDONLY, 0);
    if (rc != 0) return db_error("cannot open " + path, rc);
    return db;
}

std::string base_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool same_file(const struct stat& a, const struct stat& b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
           a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

// The read side: one read-only handle, swapped when ferry-admin renames a new file into place.
class BdbStore final : public AccountStore {
public:
    BdbStore(std::string path, std::chrono::milliseconds interval) : path_(std::move(path)), interval_(interval) {}

    Result<bool> has_domain(std::string_view domain) override {
        auto v = get(accountdb::domain_key(domain));
        if (!v) return v.error();
        return v->has_value();
    }

    Result<std::optional<Account>> account(std::string_view address) override {
        std::string a = normalize_address(address);
        auto v = get(accountdb::account_key(a));
        if (!v) return v.error();
        if (!*v) return std::optional<Account>{};
        auto acc = accountdb::decode_account(a, **v);
        if (!acc) return acc.error();
        return std::optional<Account>(std::move(acc.value()));
    }

    Result<std::vector<std::string>> alias(std::string_view address) override {
        auto exact = exact_alias(address);
        if (!exact || !exact->empty() || address.empty() || address.front() == '@') return exact;
        return exact_alias("@" + domain_of(address));
    }

    Result<std::vector<std::string>> exact_alias(std::string_view address) override {
        auto v = get(accountdb::alias_key(address));
        if (!v) return v.error();
        if (!*v) return std::vector<std::string>{};
        return accountdb::decode_targets(**v);
    }

private:
    Result<std::optional<std::string>> get(const std::string& key) {
        std::lock_guard<std::mutex> guard(mu_);
        if (auto r = refresh(); !r) return r.error();
        if (!db_) return std::optional<std::string>{};  // no file: nothing is hosted
        Dbt k(const_cast<char*>(key.data()), static_cast<u_int32_t>(key.size()));
        Dbt v;
        int rc = db_->get(nullptr, &k, &v, 0);
        if (rc == DB_NOTFOUND) return std::optional<std::string>{};
        if (rc != 0) return db_error("lookup in " + path_, rc);
        return std::optional<std::string>(std::string(static_cast<const char*>(v.get_data()), v.get_size()));
    }

    // At most every interval_, stat the path and reopen when another file has taken its place.
    Result<void> refresh() {
        auto now = std::chrono::steady_clock::now();
        if (checked_ && now < next_check_) return {};
        struct stat st;
        if (stat(path_.c_str(), &st) != 0) {
            if (errno != ENOENT) return db_error("cannot stat " + path_, errno);
            if (!missing_) log::warnx("account database %s does not exist: no domains are hosted", path_.c_str());
            db_.reset();
            missing_ = true;
            return mark_checked(now);
        }
        if (db_ && same_file(st, seen_)) return mark_checked(now);
        auto db = open_readonly(path_);
        if (!db) return db.error();  // keep checking on every lookup until it opens
        int fd = -1;
        if ((*db)->fd(&fd) != 0 || fstat(fd, &seen_) != 0) seen_ = st;
        if (missing_) log::info("account database %s is back", path_.c_str());
        missing_ = false;
        db_ = std::move(db.value());
        return mark_checked(now);
    }

    Result<void> mark_checked(std::chrono::steady_clock::time_point now) {
        checked_ = true;
        next_check_ = now + interval_;
        return {};
    }

    std::mutex mu_;  // a Db handle opened without DB_THREAD serves one thread at a time
    std::string path_;
    std::chrono::milliseconds interval_;
    std::chrono::steady_clock::time_point next_check_{};
    bool checked_ = false;
    bool missing_ = false;
    struct stat seen_ {};
    DbPtr db_;
};

}  // namespace

std::unique_ptr<AccountStore> open_account_db(const std::string& path) {
    return open_account_db(path, std::chrono::milliseconds(0));
}

std::unique_ptr<AccountStore> open_account_db(const std::string& path, std::chrono::milliseconds check_interval) {
    return std::make_unique<BdbStore>(path, check_interval);
}

std::unique_ptr<AccountStore> open_account_db(const Config& config) {
    auto store = open_account_db(config.str("account_db"), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                              config.duration("account_db_check_interval")));
    store->set_recipient_delimiter(config.str("recipient_delimiter"));
    return store;
}

// ---------------------------------------------------------------------------------------------
// The writer

namespace accountdb {

Result<Records> read_records(const std::string& path) {
    Records out;
    if (access(path.c_str(), F_OK) != 0 && errno == ENOENT) return out;
    auto db = open_readonly(path);
    if (!db) return db.error();
    Dbc* cursor = nullptr;
    if (int rc = (*db)->cursor(nullptr, &cursor, 0); rc != 0) return db_error("cursor on " + path, rc);
    Dbt k, v;
    int rc;
    while ((rc = cursor->get(&k, &v, DB_NEXT)) == 0)
        out.emplace(std::string(static_cast<const char*>(k.get_data()), k.get_size()),
                    std::string(static_cast<const char*>(v.get_data()), v.get_size()));
    cursor->close();
    if (rc != DB_NOTFOUND) return db_error("reading " + path, rc);
    return out;
}

Result<WriterLock> WriterLock::acquire(const std::string& db_path, std::chrono::milliseconds wait) {
    std::string lock_path = db_path + ".lock";
    WriterLock lock;
    lock.fd_.reset(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock.fd_.valid()) return sys_error("cannot open " + lock_path);
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (flock(lock.fd_.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) return sys_error("cannot lock " + lock_path);
        if (std::chrono::steady_clock::now() >= deadline)
            return make_error(0, "", "the account database is locked by another ferry-admin", lock_path);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return lock;
}

Result<void> remove_stale_temp_files(const std::string& db_path) {
    std::string dir = dir_of(db_path), prefix = base_of(db_path) + ".tmp.";
    DIR* d = opendir(dir.c_str());
    if (!d) return sys_error("cannot read directory " + dir);
    std::unique_ptr<DIR, int (*)(DIR*)> guard(d, closedir);
    while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name.compare(0, prefix.size(), prefix) != 0) continue;
        std::string p = dir + "/" + name;
        if (unlink(p.c_str()) != 0 && errno != ENOENT) return sys_error("cannot remove " + p);
        log::info("removed %s, left by an interrupted writer", p.c_str());
    }
    return {};
}

namespace {

// The new file takes the old one's mode and owner (it holds password hashes: 0640 when new,
// group-readable by the daemons' user).
void copy_permissions(const std::string& path, int fd, const std::string& reader_user) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        fchmod(fd, 0640);
        if (reader_user.empty()) return;
        if (const passwd* pw = getpwnam(reader_user.c_str()); pw && fchown(fd, static_cast<uid_t>(-1), pw->pw_gid) != 0)
            log::warn("cannot give %s's group read access to %s", reader_user.c_str(), path.c_str());
        return;
    }
    fchmod(fd, st.st_mode & 07777);
    if (fchown(fd, st.st_uid, st.st_gid) != 0) { /* not root: the file stays ours */ }
}

Result<void> fsync_path(const std::string& path, int flags) {
    Fd fd(open(path.c_str(), flags | O_CLOEXEC));
    if (!fd.valid()) return sys_error("cannot open " + path);
    if (fsync(fd.get()) != 0) return sys_error("cannot fsync " + path);
    return {};
}

Result<void> write_file(const std::string& tmp, const std::string& path, const Records& records,
                        const std::function<void()>& halfway, const std::string& reader_user) {
    DbPtr db = new_db();
    int rc = db->open(nullptr, tmp.c_str(), nullptr, DB_BTREE, DB_CREATE | DB_EXCL, 0600);
    if (rc != 0) return db_error("cannot create " + tmp, rc);
    int fd = -1;
    if (db->fd(&fd) == 0) copy_permissions(path, fd, reader_user);
    size_t half = records.size() / 2, i = 0;
    for (const auto& [key, value] : records) {
        if (i++ == half && halfway) halfway();
        Dbt k(const_cast<char*>(key.data()), static_cast<u_int32_t>(key.size()));
        Dbt v(const_cast<char*>(value.data()), static_cast<u_int32_t>(value.size()));
        if ((rc = db->put(nullptr, &k, &v, 0)) != 0) return db_error("cannot write " + tmp, rc);
    }
    if ((rc = db->sync(0)) != 0) return db_error("cannot sync " + tmp, rc);
    Db* raw = db.release();
    rc = raw->close(0);  // a closed handle may not be used again, whatever close returned
    delete raw;
    if (rc != 0) return db_error("cannot close " + tmp, rc);
    return fsync_path(tmp, O_RDONLY);
}

}  // namespace

Result<void> rebuild(const std::string& path, const Records& records, const std::function<void()>& halfway,
                     const std::string& reader_user) {
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    unlink(tmp.c_str());
    Records all = records;
    all[kFormatKey] = kFormatValue;
    auto r = write_file(tmp, path, all, halfway, reader_user);
    if (r && rename(tmp.c_str(), path.c_str()) != 0) r = sys_error("cannot rename " + tmp + " to " + path);
    if (!r) {
        unlink(tmp.c_str());
        return r;
    }
    return fsync_dir(dir_of(path));
}

}  // namespace accountdb

}  // namespace ferry
