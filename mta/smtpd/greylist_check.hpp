// The greylisting check of ferry-smtpd: the last of the checks, it defers a message whose triplets are new with 451 4.7.1.
#pragma once

#include <memory>

#include "common/event/worker_pool.hpp"
#include "mta/smtpd/greylist.hpp"
#include "mta/smtpd/greylist_db.hpp"
#include "mta/smtpd/message_check.hpp"

namespace ferry::smtpd {

// A message from outside to a greylisted domain passes when every greylisted recipient's triplet
// passes (greylist_decide); otherwise it is refused with "451 4.7.1 Greylisted, try again in N
// seconds", N the longest wait. It passes at once, without a look at the database, when the client
// is in greylist_networks, or when the checks before it found dmarc=pass or a DNSWL listing
// (greylist_known_good). A database that fails lets the message through (logged): greylisting only
// delays mail, and must not stop it. The database is used on a worker thread of `pool`.
class GreylistCheck final : public MessageCheck {
public:
    GreylistCheck(WorkerPool& pool, GreylistSettings settings);
    const char* name() const override { return "greylist"; }
    std::unique_ptr<CheckRun> start(std::shared_ptr<const CheckedMessage> m, Done done) override;

private:
    // Answers `done` from the loop with nothing found.
    std::unique_ptr<CheckRun> pass(Done done);

    WorkerPool& pool_;
    std::shared_ptr<const GreylistSettings> settings_;
    std::shared_ptr<const GreylistDb> db_;
};

}  // namespace ferry::smtpd
