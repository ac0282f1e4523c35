// ferry-qmgr: wires the spool, the scheduler, the notification listener and local submission onto one event loop.
#include <sysexits.h>

#include <algorithm>

#include "common/auth/accounts.hpp"
#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/event/worker_pool.hpp"
#include "common/program/declaration.hpp"
#include "common/spool/spare.hpp"
#include "common/spool/spool.hpp"
#include "mta/qmgr/notify_listener.hpp"
#include "mta/qmgr/pickup.hpp"
#include "mta/qmgr/queue.hpp"
#include "mta/qmgr/scheduler.hpp"
#include "mta/qmgr/spool_lock.hpp"
#include "common/spool/state.hpp"

using namespace ferry;

// ferry-qmgr(8), FILES: it owns the spool, binds qmgr_socket and submit_socket (local submission,
// open to every local user) and talks LMTP to ferry-mda.
static const Declaration kDeclaration{
    .user = "mail_user",
    .directories = {
        {.key = "spool_dir", .owner = Owner::mail_user, .mode = 0750},
        {.key = "spool_dir", .sub = spool::kIncoming, .owner = Owner::mail_user, .mode = 0750},
        {.key = "spool_dir", .sub = spool::kQueue, .owner = Owner::mail_user, .mode = 0750},
        {.key = "spool_dir", .sub = spool::kSpare, .owner = Owner::mail_user, .mode = 0750},
        {.key = "spool_dir", .sub = qmgr::kStateDir, .owner = Owner::mail_user, .mode = 0750},
        {.key = "spool_dir", .sub = qmgr::kCorruptDir, .owner = Owner::mail_user, .mode = 0750},
        {.key = "qmgr_socket", .parent_of_file = true, .owner = Owner::root, .mode = 0755},
        {.key = "submit_socket", .parent_of_file = true, .owner = Owner::root, .mode = 0755},
        {.key = "account_db", .parent_of_file = true, .owner = Owner::root, .mode = 0750},
    },
    .sockets = {{.key = "qmgr_socket", .mode = 0660}, {.key = "submit_socket", .mode = 0666}},
    .peers = {"mda_socket"},
};

int main(int argc, char** argv) {
    Options opt = start_program(argc, argv, "qmgr");
    const Config& config = opt.config;
    enter_batch_scheduling(config);
    // Without a timeout one hung delivery agent would keep its message busy until a restart.
    for (const char* key : {"qmgr_lmtp_timeout", "qmgr_relay_timeout"})
        if (config.duration(key).count() <= 0) {
            log::errorx("%s must be at least 1s", key);
            return EX_CONFIG;
        }
    if (int64_t ms = config.integer("qmgr_gather_delay_ms"); ms < 0 || ms > qmgr::Scheduler::kMaxGatherMs) {
        log::errorx("qmgr_gather_delay_ms must be between 0 and %lld", static_cast<long long>(qmgr::Scheduler::kMaxGatherMs));
        return EX_CONFIG;
    }
    if (auto r = create_directories(kDeclaration, config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    // Before the socket is bound: a second instance must not replace the first one's socket, nor
    // work the same spool (both would deliver every message).
    auto lock = qmgr::lock_spool(config.str("spool_dir") + "/" + qmgr::kLockFile);
    if (!lock) {
        log::errorx("%s", lock.error().what().c_str());
        return EX_TEMPFAIL;
    }
    EventBase base(event_base_new());
    if (!base) log::panic("cannot create the event loop");
    auto signals = install_signal_handlers(base.get());

    qmgr::Queue queue(config.str("spool_dir"));
    auto accounts = open_account_db(config);
    qmgr::Scheduler scheduler(base.get(), config, queue, *accounts);
    qmgr::NotifyListener listener(
        base.get(), [&scheduler](const std::string& id) { scheduler.notify(id); },
        [&scheduler](const proto::qmgr::Message& m) { return scheduler.control(m); });
    std::unique_ptr<WorkerPool> pool;  // outlives the sessions: a commit's completion may refer to one
    qmgr::PickupServer pickup(base.get(), config, [&scheduler](const std::string& id) { scheduler.notify(id); });

    std::string socket_path = config.str("qmgr_socket");
    if (auto r = listener.listen(socket_path); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    log::info("listening on qmgr %s", socket_path.c_str());
    if (auto r = pickup.listen(); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    if (auto r = drop_privileges(kDeclaration, config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    // Local submissions commit on this thread, off the loop (threads only after the privileges are dropped).
    pool = std::make_unique<WorkerPool>(base.get(), 1);
    pickup.use_workers(*pool);
    scheduler.use_workers(*pool);
    // 0: state saves on the loop, as before there was a commit stage (for comparison in bench/).
    if (int64_t threads = config.integer("qmgr_commit_threads"); threads > 0)
        scheduler.use_commit_stage(static_cast<int>(std::min<int64_t>(threads, 64)));
    if (auto r = queue.recover(); !r) {
        log::errorx("spool %s: %s", queue.dir().c_str(), r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    scheduler.scan();
    scheduler.start_timers();
    log::info("ready");
    event_base_dispatch(base.get());
    log::info("stopped with %zu messages in the queue", scheduler.queued());
    return 0;
}
