// Local submission: ferry-sendmail's LMTP on submit_socket, each message committed into the spool as smtpd commits it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/event/session_set.hpp"
#include "common/event/worker_pool.hpp"
#include "common/program/config.hpp"
#include "common/smtp/lmtp_listener.hpp"
#include "common/smtp/lmtp_server.hpp"
#include "common/spool/queue_listing.hpp"
#include "common/spool/spool.hpp"
#include "common/verify/forged_fields.hpp"

namespace ferry::qmgr {

// Who is on the other end of a submit_socket connection, from SO_PEERCRED: the kernel says it.
struct LocalUser {
    uid_t uid = 0;
    std::string name;  // from the password database, "unknown" when the uid has no entry
};

// "Received: from local (uid 1000, user alice)\n\tby host (ferry-sendmail) id QID\n\tfor <rcpt>; date\n"
// with LF line ends; "for" only when there is one recipient, as smtpd writes it.
std::string local_received_header(const LocalUser& user, const std::string& hostname, const std::string& queue_id,
                                  const std::vector<std::string>& recipients, int64_t when);

// Whether `env` is a message local user `uid` submitted here (data_start() records client "local"
// and helo "uid N"; ferry-smtpd records a network client there).
bool submitted_by(const spool::Envelope& env, uid_t uid);

// What mailq shows local user `uid` (the XQUEUE command): the whole queue when `all` (root and
// qmgr's own user), else only the messages that user submitted, and a line counting the others.
std::string listing_for(const std::vector<spool::QueueEntry>& entries, uid_t uid, bool all);

// The backend of one submit_socket session. The message goes into incoming/ as it arrives; after
// the final dot the commit (fsync, link into queue/, fsync of queue/) runs on the worker pool, so
// neither a slow client nor a slow disk stalls the scheduler's loop. A message from a user other
// than root or qmgr's own user (mail_user) loses the fields ferry-smtpd removes from mail arriving
// from outside (verify::ForgedResultsFilter): ferry-relay and ferry-mda trust ours. Every recipient is answered
// 250 only once the message is accepted; then `on_queued` schedules it.
class PickupBackend final : public smtp::LmtpBackend {
public:
    using OnQueued = std::function<void(const std::string& id)>;
    PickupBackend(const Config& config, WorkerPool& pool, OnQueued on_queued, LocalUser user, std::string session_id);
    ~PickupBackend() override;

    void begin(std::string_view sender) override;
    std::optional<Error> recipient(std::string_view address) override;
    void data_start() override;
    void data(std::string_view chunk) override;
    void end_of_data(const std::optional<Error>& refused, ReplyFn reply) override;
    void reset() override;
    // XQUEUE (no arguments): the queue listing as a multi-line 250 reply, read on the worker pool.
    bool private_command(std::string_view line, AnswerFn answer) override;

private:
    void write_out();
    void answer_all(const ReplyFn& reply, const Error& e);
    std::string removed_fields() const;

    const Config& config_;
    WorkerPool& pool_;
    OnQueued on_queued_;
    LocalUser user_;
    std::string session_id_;
    std::string sender_;
    std::vector<std::string> recipients_;
    std::optional<spool::Writer> writer_;  // incoming/<id> while the message arrives
    std::string pending_;                  // message bytes not yet written
    std::optional<verify::ForgedResultsFilter> filter_;  // set for a user who may not write our fields
    std::optional<Error> error_;           // a write failed: the message is refused at the dot
    uint64_t size_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for a commit that ends after the session
};

// The submit_socket listener (mode 0666: every local user may submit) and its sessions.
class PickupServer {
public:
    PickupServer(event_base* base, const Config& config, PickupBackend::OnQueued on_queued);

    // Binds submit_socket (mode 0666: every local user may submit) and logs "listening on submit <path>".
    Result<void> listen() { return listener_.listen(); }
    // The pool that runs the commits: started after the privileges are dropped.
    void use_workers(WorkerPool& pool) { pool_ = &pool; }

private:
    std::unique_ptr<smtp::LmtpBackend> make_backend(SessionSet::Accepted& a);

    const Config& config_;
    smtp::LmtpSessionSettings settings_;
    PickupBackend::OnQueued on_queued_;
    WorkerPool* pool_ = nullptr;
    smtp::LmtpListener listener_;  // last: its sessions use the rest
};

}  // namespace ferry::qmgr
