// The Received: trace header ferry-smtpd puts on top of every accepted message (RFC 5321 4.4).
#pragma once

#include <ctime>
#include <string>
#include <vector>

namespace ferry::smtpd {

struct TraceInfo {
    std::string helo;             // what the client said in HELO/EHLO
    std::string client_ip;        // "127.0.0.1" or "::1"
    std::string hostname;         // ours
    bool esmtp = false;           // EHLO rather than HELO
    bool tls = false;             // the session is encrypted (ESMTPS, RFC 3848)
    bool authenticated = false;   // the client logged in (ESMTPA)
    std::string tls_description;  // "TLS1.3 with AES-256-GCM" when encrypted: a "(using ...)" comment
    std::string auth_user;        // the account that logged in: an "(authenticated as ...)" comment
    std::string queue_id;
    std::vector<std::string> recipients;
    std::time_t when = 0;
    bool utf8 = false;            // the transaction used SMTPUTF8: "with UTF8SMTP..." (RFC 6531 4.3)
};

// RFC 3848 protocol name: SMTP, ESMTP, ESMTPS, ESMTPA or ESMTPSA; with SMTPUTF8 (RFC 6531 4.3)
// UTF8SMTP, UTF8SMTPS, UTF8SMTPA or UTF8SMTPSA.
std::string with_protocol(const TraceInfo& info);

// "Received: from helo (unknown [ip])\n\tby host (ferry) with ESMTP id QID\n\tfor <rcpt>; date\n"
// with LF line ends, as the spool stores messages. Over TLS and after AUTH, comment lines
// "\t(using TLS1.3 with ...)" and "\t(authenticated as user)" come before "by", as Postfix writes them. "for" only names a single recipient, so
// one copy of a message sent to many does not tell each recipient who else got it.
std::string received_header(const TraceInfo& info);

}  // namespace ferry::smtpd
