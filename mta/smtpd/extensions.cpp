// Which ESMTP extensions a session offers (STARTTLS, AUTH) and the EHLO reply lines that announce them.
#include "mta/smtpd/extensions.hpp"

#include "common/auth/sasl.hpp"

namespace ferry::smtpd {

const char* kind_name(ListenerKind kind) {
    switch (kind) {
    case ListenerKind::smtp: return "smtp";
    case ListenerKind::submission: return "submission";
    case ListenerKind::smtps: return "smtps";
    }
    return "?";
}

Offers offers(bool tls_configured, bool tls_active, bool plaintext_ok) {
    Offers o;
    o.starttls = tls_configured && !tls_active;
    // RFC 4954 4: a mechanism that would expose the password is not advertised where it may not be used.
    o.auth = plaintext_ok;
    return o;
}

std::vector<std::string> ehlo_lines(const std::string& hostname, uint64_t advertised_size, const Offers& offers) {
    std::vector<std::string> lines = {hostname};
    if (offers.starttls) lines.push_back("STARTTLS");
    if (offers.auth) lines.push_back(std::string("AUTH ") + sasl::kMechanismsWithScram);
    lines.insert(lines.end(), {"PIPELINING", "SIZE " + std::to_string(advertised_size), "8BITMIME", "ENHANCEDSTATUSCODES",
                               "CHUNKING", "SMTPUTF8", "DSN"});
    return lines;
}

}  // namespace ferry::smtpd
