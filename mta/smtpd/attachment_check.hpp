// The attachment policy of ferry-smtpd: a message carrying a refused file type (plain, or in a zip one level deep) gets 550 5.7.1.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/base/result.hpp"
#include "common/event/worker_pool.hpp"
#include "common/mail/attachments.hpp"
#include "common/program/config.hpp"
#include "mta/smtpd/message_check.hpp"

namespace ferry::smtpd {

enum class AttachmentPolicy { off, reject };

// attachment_policy and its per-domain overrides (attachment_policy_map: "domain off|reject").
struct AttachmentSettings {
    AttachmentPolicy fallback = AttachmentPolicy::reject;
    std::map<std::string, AttachmentPolicy> domains;  // lower-case recipient domain -> policy
    mail::AttachmentRules rules;                      // attachment_refuse_extensions, _types
    uint64_t max_archive_size = 20 << 20;             // attachment_max_archive_size: larger zips are not opened
    // Whether any recipient's domain has the policy on: the strictest recipient decides for the
    // whole message (one DATA has one answer).
    bool applies(const std::vector<std::string>& recipients) const;

    static Result<AttachmentSettings> from(const Config& config);
    // The map file's text; errors name the line.
    static Result<std::map<std::string, AttachmentPolicy>> parse_map(std::string_view text);
};

// What the scan of a message found: the first refused file, and zips it could not read (logged).
struct AttachmentScan {
    std::optional<std::string> refused;
    std::vector<std::string> unread;  // "b.zip: unreadable zip archive: ..." 
};
// Reads the message in pieces (its MIME structure, then each zip part's body, decoded, within
// max_archive_size): never the whole message in memory. Blocking: on a worker thread.
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
