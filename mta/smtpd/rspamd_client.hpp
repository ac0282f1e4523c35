// A client of rspamd's HTTP protocol (POST /checkv2), blocking within a deadline, for a worker thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/spool/spool.hpp"
#include "common/verify/rspamd_reply.hpp"

namespace ferry::smtpd {

// What rspamd is told of the transaction besides the message (its request header fields).
struct RspamdEnvelope {
    std::string queue_id;                 // Queue-Id
    std::string client;                   // IP
    std::string helo;                     // Helo
    std::string sender;                   // From (none for the null reverse-path)
    std::vector<std::string> recipients;  // Rcpt, one field each
    std::string user;                     // User, when the client logged in
};

struct RspamdAnswer {
    std::optional<verify::spam::RspamdReply> reply;  // none when rspamd could not be asked
    std::string error;                               // why not, for the log
};

// The request's header: "POST /checkv2 HTTP/1.1" and the envelope's fields (a value with a
// control character is left out), for a body of `length` octets.
std::string rspamd_request_head(const std::string& address, const RspamdEnvelope& e, uint64_t length);

// An HTTP/1.x reply as read to its end: the body of a 200 reply (Content-Length, or all that
// follows the header when it has none); nullopt with `why` for any other status or a malformed or
// chunked reply.
std::optional<std::string_view> http_reply_body(std::string_view raw, std::string* why);

// Sends the first `max_bytes` octets of the message to rspamd at `address` (host:port or a Unix
// socket path) and reads its verdict, every step before `deadline` (CLOCK_MONOTONIC seconds).
RspamdAnswer rspamd_check(const std::string& address, const RspamdEnvelope& e, const spool::MessageData& data,
                          size_t max_bytes, double deadline);

}  // namespace ferry::smtpd
