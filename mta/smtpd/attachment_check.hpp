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

class AttachmentCheck final : public MessageCheck {
public:
    AttachmentCheck(WorkerPool& pool, AttachmentSettings settings) : pool_(pool), settings_(std::move(settings)) {}
    const char* name() const override { return "attachments"; }
    std::unique_ptr<CheckRun> start(std::shared_ptr<const CheckedMessage> m, Done done) override;

private:
    WorkerPool& pool_;
    AttachmentSettings settings_;
};

}  // namespace ferry::smtpd
