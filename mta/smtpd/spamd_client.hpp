// A client of SpamAssassin's spamd (the SPAMC/1.5 protocol's CHECK), blocking within a deadline, for a worker thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/spool/spool.hpp"

namespace ferry::smtpd {

struct SpamdAnswer {
    std::optional<double> score;  // spamd's score; none when it could not be asked
    std::string error;            // why not, for the log
};

// spamd's reply to CHECK: "SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n" gives 1000.0.
// Nullopt for anything else (another status, no Spam: header, a malformed score).
std::optional<double> parse_spamd_reply(std::string_view reply);

// Sends the first `max_bytes` octets of the message to spamd at `address` (a Unix socket path or
// host:port) and reads its score, every step before `deadline` (CLOCK_MONOTONIC seconds).
SpamdAnswer spamd_check(const std::string& address, const spool::MessageData& data, size_t max_bytes,
                        double deadline);

}  // namespace ferry::smtpd
