// The attachment policy of ferry-smtpd: a message carrying a refused file type (plain, or in a zip one level deep) gets 550 5.7.1 where its domain rejects.
#include "mta/smtpd/attachment_check.hpp"

#include "common/base/log.hpp"
#include "common/event/post.hpp"

namespace ferry::smtpd {

Result<AttachmentScan> scan_attachments(const spool::MessageData& data, const AttachmentSettings& s) {
    return mail::scan_attachments([&data](uint64_t at, char* buf, size_t len) { return data.read(at, buf, len); }, s);
}

namespace {

// The check's answer for a scan's outcome; logs what the scan could not read.
Finding finding_of(const CheckedMessage& m, Result<AttachmentScan> result) {
    Finding f;
    if (!result) {
        log::errorx("%s: %s: attachment check failed: %s", m.session.c_str(), m.id.c_str(), result.error().what().c_str());
        f.refusal = make_error(451, "4.3.0", "Temporary failure checking the message", result.error().what());
        return f;
    }
    for (const auto& u : result->unread) log::info("%s: %s: attachment %s", m.session.c_str(), m.id.c_str(), u.c_str());
    if (result->refused)
        f.refusal = make_error(550, "5.7.1", "Message refused: " + *result->refused + " is a file type not accepted here",
                               *result->refused);
    return f;
}

}  // namespace

std::unique_ptr<CheckRun> AttachmentCheck::start(std::shared_ptr<const CheckedMessage> m, Done done) {
    auto alive = std::make_shared<bool>(true);
    bool nothing_to_do = !settings_.applies(m->recipients) || settings_.rules.empty();
    if (!nothing_to_do && m->data.length > kInlineScan) {
        // Most large messages carry no file, as their first piece shows: no trip to a worker for them.
        auto settled = mail::settled_without_files(
            [&m](uint64_t at, char* buf, size_t len) { return m->data.read(at, buf, len); });
        nothing_to_do = settled && *settled;
    }
    if (nothing_to_do || m->data.length <= kInlineScan) {
        // The answer still comes from the loop's next turn, never from within start().
        Finding f = nothing_to_do ? Finding{} : finding_of(*m, scan_attachments(m->data, settings_));
        post(base_, [alive, done, f = std::move(f)]() mutable {
            if (*alive) done(std::move(f));
        });
        return std::make_unique<FlagRun>(alive);
    }
    auto result = std::make_shared<Result<AttachmentScan>>(AttachmentScan{});
    pool_.submit([m, result, this] { *result = scan_attachments(m->data, settings_); },
                 [m, result, alive, done] {
                     if (*alive) done(finding_of(*m, std::move(*result)));
                 });
    return std::make_unique<FlagRun>(alive);
}

}  // namespace ferry::smtpd
