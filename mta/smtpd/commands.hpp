// ferry-smtpd's command table: per verb, a check step (syntax and state -> reply) and a proceed step.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/base/command_table.hpp"
#include "common/base/result.hpp"
#include "common/smtp/smtp_proto.hpp"

namespace ferry::smtpd {

class Session;

// Check decides without acting: an Error is the reply; a value is what proceed needs (RCPT: the
// address the policy accepted), usually empty. Proceed acts and queues the success reply.
using CommandSpec = ferry::CommandSpec<std::string_view, Result<std::string> (*)(Session&, const smtp::Command&),
                                       void (*)(Session&, const smtp::Command&, const std::string&)>;

// nullptr for a verb smtpd does not know (500 5.5.2).
const CommandSpec* find_command(std::string_view verb);

// Runs one parsed command through the table: nullopt when it proceeded, else the reply to refuse with.
std::optional<Error> dispatch_command(Session& session, const smtp::Command& cmd);

}  // namespace ferry::smtpd
