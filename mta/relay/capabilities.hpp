// What an SMTP server offers in its EHLO reply (RFC 5321 4.1.1.1), as ferry-relay uses it.
#pragma once

#include <cstdint>
#include <optional>

#include "common/smtp/reply.hpp"

namespace ferry::relay {

struct Capabilities {
    bool esmtp = false;       // EHLO was accepted (else HELO: nothing below)
    bool starttls = false;
    bool pipelining = false;  // RFC 2920
    bool eightbitmime = false;
    bool smtputf8 = false;    // RFC 6531
    bool chunking = false;    // RFC 3030
    bool dsn = false;         // RFC 3461
    std::optional<uint64_t> size;  // RFC 1870: the fixed limit; 0 or a bare SIZE: none announced
    bool auth_plain = false;
    bool auth_login = false;
};

// From the lines of a 250 EHLO reply (the first names the server); unknown keywords are ignored.
Capabilities parse_ehlo(const smtp::Reply& reply);

}  // namespace ferry::relay
