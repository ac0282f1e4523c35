// ferry-qmgr: wires the spool, the scheduler and the notification listener onto one event loop.
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

#include "common/auth/accounts.hpp"
#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/program/privs.hpp"
#include "mta/qmgr/notify_listener.hpp"
#include "mta/qmgr/queue.hpp"
#include "mta/qmgr/scheduler.hpp"

using namespace ferry;

// The socket was bound before dropping privileges: hand it to mail_user, or smtpd (running as
// mail_user) could not connect to it.
static Result<void> give_socket_to_mail_user(const std::string& path, const std::string& user) {
    if (user.empty() || geteuid() != 0) return {};
    passwd* pw = getpwnam(user.c_str());
    if (!pw) return make_error(0, "", "unknown mail_user " + user);
    if (chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) return sys_error("cannot chown " + path);
    return {};
}

int main(int argc, char** argv) {
    Options opt = start_program(argc, argv, "qmgr");
    const Config& config = opt.config;
    // Without a timeout one hung delivery agent would keep its message busy until a restart.
    if (config.duration("qmgr_lmtp_timeout").count() <= 0) {
        log::errorx("qmgr_lmtp_timeout must be at least 1s");
        return 78;  // EX_CONFIG
    }
    EventBase base(event_base_new());
    if (!base) log::panic("cannot create the event loop");
    auto signals = install_signal_handlers(base.get());

    qmgr::Queue queue(config.str("spool_dir"));
    auto accounts = open_account_db(config);
    qmgr::Scheduler scheduler(base.get(), config, queue, *accounts);
    qmgr::NotifyListener listener(base.get(), [&scheduler](const std::string& id) { scheduler.notify(id); });

    std::string socket_path = config.str("qmgr_socket");
    if (auto r = listener.listen(socket_path); !r) {
        log::errorx("%s", r.error().what().c_str());
        return 75;
    }
    log::info("listening on qmgr %s", socket_path.c_str());
    if (auto r = give_socket_to_mail_user(socket_path, config.str("mail_user")); !r) {
        log::errorx("%s", r.error().what().c_str());
        return 75;
    }
    if (auto r = drop_privileges(config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return 75;
    }
    if (auto r = queue.recover(); !r) {
        log::errorx("spool %s: %s", queue.dir().c_str(), r.error().what().c_str());
        return 75;
    }
    scheduler.scan();
    scheduler.start_timers();
    log::info("ready");
    event_base_dispatch(base.get());
    log::info("stopped with %zu messages in the queue", scheduler.queued());
    return 0;
}
