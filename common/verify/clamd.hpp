// A client of clamd's INSTREAM command (blocking, within a deadline; for worker threads and ferry-mda -d), shared by ferry-smtpd and ferry-mda.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/base/result.hpp"

namespace ferry::scan {

// clamd's answer to INSTREAM: "stream: OK", "stream: Eicar-Signature FOUND", "... ERROR".
struct ClamdVerdict {
    enum class Kind { clean, found, error };
    Kind kind = Kind::error;
    std::string text;  // the signature name with found; clamd's words (or ours) with error
};
// Pure: a reply (its NUL and line end may still be there) to a verdict; names and texts are
// printable ASCII, at most 200 characters.
ClamdVerdict parse_clamd_reply(std::string_view reply);

// Up to `len` octets of the message from position `at`; 0 at its end.
using ReadAt = std::function<Result<size_t>(uint64_t at, char* buf, size_t len)>;

// The whole exchange over a connected stream socket `fd`, the message read in chunks of `chunk`
// octets; every read and write waits at most until `deadline` (CLOCK_MONOTONIC seconds, scan::now()).
ClamdVerdict clamd_instream(int fd, const ReadAt& read, double deadline, size_t chunk = 64 * 1024);

// Connects to `address` (a Unix socket path starting with "/", or host:port) and scans the message,
// all within `timeout` seconds; a clamd that cannot be reached is an error verdict.
ClamdVerdict clamd_scan(const std::string& address, const ReadAt& read, double timeout);

}  // namespace ferry::scan

namespace ferry::scan {

// The field ferry-smtpd adds to a message clamd found clean: "X-Virus-Scanned: clamd at HOST\n".
std::string scanned_field(std::string_view host);
// Whether a header field ("Name: value", folded or not, line end or not) is scanned_field(host),
// the host compared without case: ferry-smtpd drops such fields arriving from outside.
bool is_scanned_field(std::string_view field, std::string_view host);
// Whether ferry-smtpd on `host` scanned the message: scanned_field(host) stands among the fields
// above the first Received:, and that Received: is ferry-smtpd's on `host` ("by HOST (ferry)").
// A field a sender wrote is always below the Received: of whoever took the message in.
bool scanned_by_smtpd(std::string_view message, std::string_view host);
// The field of a message delivered unscanned (virus_scan_fail_open): "X-Virus-Status: unscanned
// (clamd unavailable) at HOST\n".
std::string unscanned_field(std::string_view host);

}  // namespace ferry::scan
