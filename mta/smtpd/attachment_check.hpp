// The attachment policy of ferry-smtpd: a message carrying a refused file type (plain, or in a zip one level deep) gets 550 5.7.1 where its domain rejects.
#pragma once

#include <memory>
#include <string>

#include "common/base/result.hpp"
#include "common/event/worker_pool.hpp"
#include "common/mail/attachment_policy.hpp"
#include "common/program/config.hpp"
#include "mta/smtpd/message_check.hpp"

namespace ferry::smtpd {

// The policy and its settings live in common/mail (ferry-mda applies attachment_policy strip).
using mail::AttachmentPolicy;
using mail::AttachmentScan;
using mail::AttachmentSettings;

// scan_attachments over a queue file's data: the first refused file.
Result<AttachmentScan> scan_attachments(const spool::MessageData& data, const AttachmentSettings& s);

// A message of at most kInlineScan octets is scanned on the loop: smtpd has just written it, so it
// is read from the page cache in less time than the trip to a worker and back takes; larger ones
// are scanned on a worker, unless their first 16 KB show that they carry no file.
class AttachmentCheck final : public MessageCheck {
public:
    static constexpr uint64_t kInlineScan = 64 * 1024;

    AttachmentCheck(event_base* base, WorkerPool& pool, AttachmentSettings settings)
        : base_(base), pool_(pool), settings_(std::move(settings)) {}
    const char* name() const override { return "attachments"; }
    std::unique_ptr<CheckRun> start(std::shared_ptr<const CheckedMessage> m, Done done) override;

private:
    event_base* base_;
    WorkerPool& pool_;
    AttachmentSettings settings_;
};

}  // namespace ferry::smtpd
