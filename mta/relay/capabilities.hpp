// What an SMTP server offers in its EHLO reply (RFC 5321 4.1.1.1), as ferry-relay uses it.
#pragma once

#include <cstdint>
#include <optional>

#include <string>

#include "common/base/result.hpp"
#include "common/smtp/reply.hpp"
#include "mta/relay/message.hpp"

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

// What a peer with `caps` cannot take of `m`, as the permanent reply every recipient gets: a size
// above its SIZE (552 5.3.4, RFC 1870), a UTF-8 address or header without SMTPUTF8 (553 5.6.7, RFC 6531 3.4),
// 8-bit data without 8BITMIME that cannot be converted (554 5.6.3, RFC 6152).
std::optional<Error> peer_refusal(const Capabilities& caps, const OutboundMessage& m, const std::string& peer);

}  // namespace ferry::relay
