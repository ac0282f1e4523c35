// ferry-mda: wires the LMTP server (daemon mode) or the one-shot LDA mode (-d).
#include <sysexits.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/auth/accounts.hpp"
#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/event/commit_stage.hpp"
#include "common/event/worker_pool.hpp"
#include "common/program/declaration.hpp"
#include "common/store/index.hpp"
#include "mda/delivery.hpp"
#include "mda/lda.hpp"
#include "mda/lmtp_server.hpp"

namespace {

// ferry-mda(8), FILES: the daemon binds mda_socket, writes under mail_dir and ${state_dir}/mda (its
// delivery record) and reads the account database.
// The LDA mode (-d) runs as its caller and creates nothing but Maildirs.
// The delivery record (ferry-mda(8), EXACTLY ONCE).
const ferry::DirectorySpec kRecordDir{.key = "state_dir", .sub = "mda", .owner = ferry::Owner::mail_user, .mode = 0700, .adopt = true};

const ferry::Declaration kDeclaration{
    .user = "mail_user",
    .directories = {
        {.key = "mail_dir", .owner = ferry::Owner::mail_user, .mode = 0700},
        kRecordDir,
        {.key = "mda_socket", .parent_of_file = true, .owner = ferry::Owner::root, .mode = 0755},
        {.key = "account_db", .parent_of_file = true, .owner = ferry::Owner::root, .mode = 0750},
    },
    .sockets = {{.key = "mda_socket", .mode = 0660}},
    .peers = {},
};

struct LdaArgs {
    std::optional<std::string> recipient;  // -d
    std::optional<std::string> sender;     // -f
};

// Takes -d and -f out of argv; what is left goes to start_program (-c, -o, -n).
LdaArgs take_lda_args(int& argc, char** argv) {
    LdaArgs a;
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if ((arg == "-d" || arg == "-f") && i + 1 < argc) {
            (arg == "-d" ? a.recipient : a.sender) = argv[++i];
            continue;
        }
        argv[out++] = argv[i];
    }
    argc = out;
    return a;
}

int run_daemon(const ferry::Config& config) {
    using namespace ferry;
    if (auto r = create_directories(kDeclaration, config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    EventBase base(event_base_new());
    if (!base) log::panic("event_base_new failed");
    auto accounts = open_account_db(config.str("account_db"));
    accounts->set_recipient_delimiter(config.str("recipient_delimiter"));
    mda::Deliverer deliverer(config, *accounts);
    if (!deliverer.attachments()) {
        log::errorx("%s", deliverer.attachments().error().what().c_str());
        return EX_CONFIG;
    }
    // Before the socket: a second ferry-mda must not listen (it would share the record).
    auto record = mda::DeliveryRecord::open(directory_path(kRecordDir, config),
                                            config.duration("mda_delivery_record_lifetime"));
    if (!record) {
        log::errorx("%s", record.error().what().c_str());
        return EX_TEMPFAIL;
    }
    mda::FolderUids uids;              // outlives the stage, whose batch thread uses it
    std::unique_ptr<WorkerPool> pool;  // outlives the sessions: a job's completion may refer to one
    std::unique_ptr<CommitStage> stage;  // the same
    mda::LmtpServer server(base.get(), config, deliverer, record->get());
    if (auto r = server.listen(); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    if (auto r = drop_privileges(kDeclaration, config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    pool = std::make_unique<WorkerPool>(base.get(), static_cast<int>(config.integer("mda_workers")));
    stage = std::make_unique<CommitStage>(base.get(), static_cast<int>(config.integer("mda_commit_threads")));
    server.use_workers(*pool, *stage, uids);
    deliverer.cleanup_all_tmp();  // the Maildir spec's 36-hour rule, at start; then per Maildir on delivery
    auto signals = install_signal_handlers(base.get());
    log::info("ready");
    event_base_dispatch(base.get());
    log::info("stopped");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    LdaArgs lda = take_lda_args(argc, argv);
    auto opt = ferry::start_program(argc, argv, "mda", " [-d user@domain [-f sender]]");
    ferry::enter_batch_scheduling(opt.config);
    // Tests stop a delivery between the Maildir commit and the UID (ferry-mailstore(5)).
    if (!opt.config.str("test_pause_at").empty())
        ferry::store::set_pause_hook([&c = opt.config](const char* point) { ferry::test_pause_point(c, point); });
    if (lda.recipient) return ferry::mda::run_lda(opt.config, *lda.recipient, lda.sender);
    if (lda.sender) {
        ferry::log::errorx("-f needs -d");
        return ferry::mda::kExitUsage;
    }
    return run_daemon(opt.config);
}
