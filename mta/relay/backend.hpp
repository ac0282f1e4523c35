// ferry-relay behind the LMTP server: each transaction is one message for one destination domain, sent on over SMTP.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/smtp/lmtp_server.hpp"
#include "mta/relay/message.hpp"
#include "mta/relay/transfer.hpp"

namespace ferry::relay {

// The data is kept in an unlinked temporary file while it arrives; after the final dot the
// transfer runs, and each recipient's LMTP reply carries the remote server's own reply. Nothing
// is kept after the replies: qmgr keeps the message until it has them.
class RelayBackend final : public smtp::LmtpBackend {
public:
    RelayBackend(RelayContext& ctx, std::string session_id);
    ~RelayBackend() override;

    void begin(std::string_view sender) override;
    std::optional<Error> recipient(std::string_view address) override;
    // With the parameters qmgr passed on (DSN, SMTPUTF8): kept for the remote.
    void mail(std::string_view sender, const smtp::MailParams& params) override;
    std::optional<Error> rcpt(std::string_view address, const smtp::RcptParams& params) override;
    void data_start() override;
    void data(std::string_view chunk) override;
    void end_of_data(const std::optional<Error>& refused, ReplyFn reply) override;
    void reset() override;

private:
    RelayContext& ctx_;
    std::string session_id_;
    std::string domain_;  // of the first recipient; the others must share it
    std::unique_ptr<OutboundMessage> msg_;
    MessageWriter writer_;
    std::optional<Error> write_error_;
    std::string head_;  // the start of the message, for the queue id in its Received: header
    std::unique_ptr<Transfer> transfer_;
};

}  // namespace ferry::relay
