// ferry-admin's write transaction: the Postfix-style rebuild-then-rename under an flock.
#include <sys/stat.h>

#include <cstdio>

#include "common/admin/admin.hpp"
#include "common/program/daemon.hpp"
#include "common/base/log.hpp"

namespace ferry::admin {

namespace {

// A fresh installation: create the database's directory (one level) so the lock file can exist.
Result<void> ensure_directory(const std::string& db_path) {
    auto slash = db_path.rfind('/');
    if (slash == std::string::npos || slash == 0) return {};
    std::string dir = db_path.substr(0, slash);
    if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) return sys_error("cannot create directory " + dir);
    return {};
}

}  // namespace

int fail(int status, const std::string& message) {
    fprintf(stderr, "ferry-admin: %s\n", message.c_str());
    return status;
}

int update(const Context& ctx, const std::function<Result<void>(Records&)>& edit) {
    std::string path = ctx.config.str("account_db");
    if (auto r = ensure_directory(path); !r) return fail(kExitTemp, r.error().what());
    // Held until this process exits; the kernel drops it even on SIGKILL.
    auto lock = accountdb::WriterLock::acquire(path, ctx.lock_wait);
    if (!lock) return fail(kExitTemp, lock.error().what());
    if (auto r = accountdb::remove_stale_temp_files(path); !r) return fail(kExitTemp, r.error().what());
    auto records = accountdb::read_records(path);
    if (!records) return fail(kExitTemp, records.error().what());
    if (auto r = edit(*records); !r) return fail(kExitUser, r.error().what());
    auto halfway = [&ctx]() { test_pause_point(ctx.config, "admin-mid-write"); };
    if (auto r = accountdb::rebuild(path, *records, halfway, ctx.config.str("mail_user")); !r)
        return fail(kExitTemp, r.error().what());
    return kExitOk;
}

std::optional<Records> snapshot(const Context& ctx) {
    auto records = accountdb::read_records(ctx.config.str("account_db"));
    if (!records) {
        fail(kExitTemp, records.error().what());
        return std::nullopt;
    }
    return std::move(records.value());
}

}  // namespace ferry::admin
