// ferry-admin check's blocking client side: a TCP connection with time limits, SMTP replies, STARTTLS.
#pragma once

#include <gnutls/gnutls.h>

#include <memory>
#include <string>

#include "common/base/fd.hpp"

namespace ferry::admin {

// A TCP connection to address:port within `timeout_ms`, from `source` when given (an address of this
// host); an invalid Fd with errno set on failure. The socket is left non-blocking.
Fd connect_to(const std::string& address, int port, int timeout_ms, const std::string& source = "");

// One SMTP reply (all its lines) within `timeout_ms`; "" on timeout or close.
std::string read_reply(int fd, int timeout_ms);

std::string first_line(const std::string& text);

// An SMTP client conversation over a connection, in clear or, after starttls(), over TLS (no
// certificate verification: the certificate has its own check).
class SmtpTalk {
public:
    SmtpTalk(Fd fd, int timeout_ms);
    // Sends `line` (CRLF added) and returns the reply; "" when the peer is gone or silent.
    std::string command(const std::string& line);
    std::string reply();
    bool send(const std::string& bytes);
    // The TLS handshake after a 220 to STARTTLS; an error text, or "" on success.
    std::string starttls(const std::string& server_name);
    // "TLS1.3 ..." once TLS is on, "" before.
    std::string tls_description() const;

private:
    Fd fd_;
    int timeout_ms_;
    std::string buffer_;
    std::shared_ptr<gnutls_certificate_credentials_st> creds_;
    std::shared_ptr<gnutls_session_int> tls_;
};

}  // namespace ferry::admin
