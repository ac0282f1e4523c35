// The LMTP listener of ferry-mda: accepts on mda_socket and owns the sessions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/program/config.hpp"
#include "common/event/event.hpp"
#include "common/base/fd.hpp"
#include "common/event/session_set.hpp"
#include "common/smtp/lmtp_listener.hpp"
#include "common/smtp/lmtp_server.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "common/event/commit_stage.hpp"
#include "common/event/worker_pool.hpp"
#include "mda/delivery.hpp"
#include "mda/delivery_record.hpp"
#include "mda/lmtp_backend.hpp"

namespace ferry::mda {

using smtp::LmtpSession;

// Settings every session reads, taken from the configuration once.
struct LmtpSettings : smtp::LmtpSessionSettings {
    size_t max_sessions = 100;
};

LmtpSettings lmtp_settings(const Config& config);

class LmtpServer {
public:
    // `record` may be null (no delivery record: at-least-once).
    LmtpServer(event_base* base, const Config& config, Deliverer& deliverer, DeliveryRecord* record);

    // Binds mda_socket and logs "listening on lmtp <path>".
    Result<void> listen() { return listener_.listen(); }
    // The pool that reads the delivery record and the stage that commits the copies (shared by all
    // sessions, with the UIDs of its batch): started after the privileges are dropped, before the
    // loop runs. They outlive the server: a commit still running uses `uids`.
    void use_workers(WorkerPool& pool, CommitStage& stage, FolderUids& uids) {
        pool_ = &pool;
        stage_ = &stage;
        uids_ = &uids;
    }

    const Config& config() const { return config_; }
    const LmtpSettings& settings() const { return settings_; }
    Deliverer& deliverer() { return deliverer_; }

private:
    std::unique_ptr<smtp::LmtpBackend> make_backend(SessionSet::Accepted& a);

    const Config& config_;
    LmtpSettings settings_;
    Deliverer& deliverer_;
    WorkerPool* pool_ = nullptr;
    CommitStage* stage_ = nullptr;
    FolderUids* uids_ = nullptr;
    DeliveryRecord* record_;
    smtp::LmtpListener listener_;  // last: its sessions use the rest
};

}  // namespace ferry::mda
