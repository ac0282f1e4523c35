// The attachment policy of ferry-smtpd: a message carrying a refused file type (plain, or in a zip one level deep) gets 550 5.7.1 where its domain rejects.
#include "mta/smtpd/attachment_check.hpp"

#include "common/base/log.hpp"

namespace ferry::smtpd {

Result<AttachmentScan> scan_attachments(const spool::MessageData& data, const AttachmentSettings& s) {
    return mail::scan_attachments([&data](uint64_t at, char* buf, size_t len) { return data.read(at, buf, len); }, s);
}

std::unique_ptr<CheckRun> AttachmentCheck::start(std::shared_ptr<const CheckedMessage> m, Done done) {
    auto alive = std::make_shared<bool>(true);
    if (!settings_.applies(m->recipients) || settings_.rules.empty()) {
        // Nothing to look for; the answer still comes from the loop, never from within start().
        pool_.submit([] {}, [alive, done] {
            if (*alive) done(Finding{});
        });
        return std::make_unique<FlagRun>(alive);
    }
    auto result = std::make_shared<Result<AttachmentScan>>(AttachmentScan{});
    pool_.submit([m, result, this] { *result = scan_attachments(m->data, settings_); },
                 [m, result, alive, done] {
                     if (!*alive) return;
                     Finding f;
                     if (!*result) {
                         log::errorx("%s: %s: attachment check failed: %s", m->session.c_str(), m->id.c_str(),
                                     result->error().what().c_str());
                         f.refusal = make_error(451, "4.3.0", "Temporary failure checking the message",
                                                result->error().what());
                         return done(std::move(f));
                     }
                     for (const auto& u : (*result)->unread)
                         log::info("%s: %s: attachment %s", m->session.c_str(), m->id.c_str(), u.c_str());
                     if ((*result)->refused)
                         f.refusal = make_error(550, "5.7.1",
                                                "Message refused: " + *(*result)->refused +
                                                    " is a file type not accepted here",
                                                *(*result)->refused);
                     done(std::move(f));
                 });
    return std::make_unique<FlagRun>(alive);
}

}  // namespace ferry::smtpd
