// ferry-admin's write transaction: the Postfix-style rebuild-then-rename under an flock.
#include <cstdio>

#include "common/admin/admin.hpp"
#include "common/program/daemon.hpp"
#include "common/program/declaration.hpp"
#include "common/base/log.hpp"

namespace ferry::admin {

namespace {

// ferry-admin(8), FILES: a fresh installation gets the database's directory, which the daemons
// (as mail_user) must be able to enter.
const Declaration kDeclaration{
    .user = "mail_user",
    .directories = {{.key = "account_db", .parent_of_file = true, .owner = Owner::root, .mode = 0750}},
    .sockets = {},
    .peers = {},
};

}  // namespace

int fail(int status, const std::string& message) {
    fprintf(stderr, "ferry-admin: %s\n", message.c_str());
    return status;
}

int update(const Context& ctx, const std::function<Result<void>(Records&)>& edit) {
    std::string path = ctx.config.str("account_db");
    if (auto r = create_directories(kDeclaration, ctx.config); !r) return fail(kExitTemp, r.error().what());
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
