// Which ESMTP extensions a session offers (STARTTLS, AUTH) and the EHLO reply lines that announce them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ferry::smtpd {

// smtpd_listen (port 25, MX), smtpd_submission_listen (587), smtpd_smtps_listen (465, implicit TLS).
enum class ListenerKind { smtp, submission, smtps };
const char* kind_name(ListenerKind kind);

// Message submission (RFC 6409, RFC 8314): AUTH is required before MAIL.
inline bool requires_auth(ListenerKind kind) { return kind != ListenerKind::smtp; }

struct Offers {
    bool starttls = false;  // RFC 3207
    bool auth = false;      // RFC 4954, with sasl::kMechanisms
};

// STARTTLS: a certificate is configured and the session is not encrypted yet (never on smtps,
// which is encrypted from the start). AUTH: wherever a password may travel on this connection,
// which plaintext_allowed() decides from plaintext_auth, TLS and the peer address.
Offers offers(bool tls_configured, bool tls_active, bool plaintext_ok);

// The EHLO reply lines: our host name, then the extensions. STARTTLS and AUTH come first so the
// fixed tail (PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, CHUNKING, SMTPUTF8, DSN) stays the
// same on every listener.
std::vector<std::string> ehlo_lines(const std::string& hostname, uint64_t advertised_size, const Offers& offers);

}  // namespace ferry::smtpd
