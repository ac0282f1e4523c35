// ferry-smtpd's command table: per verb, a check step (syntax and state -> reply) and a proceed step.
#pragma once

#include <string>
#include <string_view>

#include "common/base/result.hpp"
#include "common/smtp/smtp_proto.hpp"

namespace ferry::smtpd {

class Session;

struct CommandSpec {
    std::string_view verb;
    // Decides without acting: an Error is the reply; a value is what proceed needs (RCPT: the
    // address the policy accepted), usually empty.
    Result<std::string> (*check)(Session& session, const smtp::Command& cmd);
    // Acts on a command that passed its check and queues the success reply.
    void (*proceed)(Session& session, const smtp::Command& cmd, const std::string& checked);
};

// nullptr for a verb smtpd does not know (500 5.5.2).
const CommandSpec* find_command(std::string_view verb);

}  // namespace ferry::smtpd
