// The virus check of a received message: clamd's INSTREAM protocol on a worker thread, every step within clamd_timeout.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/event/worker_pool.hpp"
#include "mta/smtpd/message_check.hpp"

namespace ferry::smtpd {

// clamd's answer to INSTREAM: "stream: OK", "stream: Eicar-Signature FOUND", "... ERROR".
struct ClamdVerdict {
    enum class Kind { clean, found, error };
    Kind kind = Kind::error;
    std::string text;  // the signature name with found; clamd's words (or ours) with error
};
ClamdVerdict parse_clamd_reply(std::string_view reply);

// The whole exchange over a connected stream socket `fd`, the message read from `data` in chunks
// of `chunk` octets; every read and write waits at most until `deadline` (CLOCK_MONOTONIC seconds).
ClamdVerdict clamd_instream(int fd, const spool::MessageData& data, double deadline, size_t chunk = 64 * 1024);

// clamd_address: a Unix socket path (it starts with "/") or host:port; timeout in seconds.
std::unique_ptr<MessageCheck> make_clamd_check(WorkerPool& pool, std::string address, double timeout);

}  // namespace ferry::smtpd
