// ferry-mda behind the LMTP server: recipients are accounts, each gets its Maildir copy written as the message arrives.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/auth/accounts.hpp"
#include "common/program/config.hpp"
#include "common/smtp/lmtp_server.hpp"
#include "mda/delivery.hpp"

namespace ferry::mda {

class MaildirBackend final : public smtp::LmtpBackend {
public:
    MaildirBackend(Deliverer& deliverer, const Config& config, std::string session_id);

    void begin(std::string_view sender) override;
    std::optional<Error> recipient(std::string_view address) override;
    void data_start() override;
    void data(std::string_view chunk) override;
    void end_of_data(const std::optional<Error>& refused, Done done) override;
    void reset() override;

private:
    // One per distinct account: a recipient given twice gets one copy and the same answer twice.
    struct Target {
        std::string address;  // as the account database spells it
        Account account;
        std::string maildir;
        std::optional<Error> failed;  // why it will not be delivered
        bool delivered = false;       // its copy is durable in new/: the only way to a 250
    };

    void choose_live_copy();
    void finish_all(const std::string& qid);
    void finish_one(const std::string& qid, Target& t, Deliverer::Copy& copy);

    Deliverer& deliverer_;
    const Config& config_;
    std::string session_id_;  // starts each log line, before the queue id
    std::string sender_;
    std::vector<size_t> recipients_;  // accepted RCPTs, in order: positions in targets_
    std::vector<Target> targets_;
    // The copy written while the message arrives, for targets_[live_]. The other targets' copies are
    // made from it after the dot, one at a time: a session holds two files open at most, however
    // many recipients it has.
    std::optional<Deliverer::Copy> live_copy_;
    size_t live_ = 0;
    std::string head_;                // the start of the message, for the queue id in its Received: header
    uint64_t size_ = 0;               // message bytes so far (LF line ends)
};

}  // namespace ferry::mda
