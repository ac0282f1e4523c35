// The Received: trace header ferry-smtpd puts on top of every accepted message (RFC 5321 4.4).
#include "mta/smtpd/received.hpp"

#include <cstdio>

#include "common/mail/date.hpp"

namespace ferry::smtpd {

namespace {

// Peer-supplied text inside a header: printable ASCII only, so it can neither fold nor forge lines.
// At most `max` characters: the header must stay well inside smtp::kTraceAllowance.
// With `utf8` (an SMTPUTF8 recipient, already checked as well-formed) octets above 0x7f stay.
std::string printable(const std::string& s, size_t max = 512, bool utf8 = false) {
    std::string r;
    for (char c : s.substr(0, max))
        r += (c > 0x20 && c < 0x7f) || (utf8 && static_cast<unsigned char>(c) >= 0x80) ? c : '?';
    return r.empty() ? "unknown" : r;
}

// Our own text inside a header comment: printable ASCII and spaces, no parentheses or backslashes
// that would end or escape the comment. At most 512 characters, as printable().
std::string comment_text(const std::string& s) {
    std::string r;
    for (char c : s.substr(0, 512)) r += (c >= 0x20 && c < 0x7f && c != '(' && c != ')' && c != '\\') ? c : '?';
    return r;
}

// RFC 5321 4.1.3: an IPv6 address literal carries the "IPv6:" tag.
std::string address_literal(const std::string& ip) {
    return ip.find(':') != std::string::npos ? "[IPv6:" + ip + "]" : "[" + ip + "]";
}

}  // namespace

std::string with_protocol(const TraceInfo& info) {
    if (!info.esmtp) return "SMTP";
    std::string p = info.utf8 ? "UTF8SMTP" : "ESMTP";
    if (info.tls) p += "S";
    if (info.authenticated) p += "A";
    return p;
}

std::string received_header(const TraceInfo& info) {
    std::string h = "Received: from " + printable(info.helo) + " (unknown " + address_literal(info.client_ip) + ")\n";
    // RFC 5321 4.4: By-domain starts with CFWS, so comments may stand before "by".
    if (info.tls && !info.tls_description.empty()) h += "\t(using " + comment_text(info.tls_description) + ")\n";
    if (info.authenticated && !info.auth_user.empty()) h += "\t(authenticated as " + comment_text(info.auth_user) + ")\n";
    h += "\tby " + printable(info.hostname) + " (ferry) with " + with_protocol(info) + " id " + info.queue_id;
    if (info.recipients.size() == 1) h += "\n\tfor <" + printable(info.recipients.front(), 512, info.utf8) + ">";
    h += "; " + mail::rfc5322_date(info.when) + "\n";
    return h;
}

}  // namespace ferry::smtpd
