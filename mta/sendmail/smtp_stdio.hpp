// sendmail -bs: a small SMTP server on stdin and stdout, each transaction handed to ferry-qmgr's submit_socket.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/smtp/submit_client.hpp"

namespace ferry::sendmail {

struct SmtpStdioSettings {
    std::string hostname;
    uint64_t message_size_limit = 10240000;  // 0: none
    size_t max_command_length = 4096;
};

// Reads commands from `in` and answers on `out` until QUIT or the end of the input. `submit_one`
// gets each complete transaction (the message with LF line ends, its header not yet completed)
// and says how it went; its reply is the client's answer to the final dot.
void run_smtp_stdio(int in, int out, const SmtpStdioSettings& settings,
                    const std::function<smtp::SubmitOutcome(smtp::Submission&)>& submit_one);

}  // namespace ferry::sendmail
