// What an SMTP server offers in its EHLO reply (RFC 5321 4.1.1.1), as ferry-relay uses it.
#include "mta/relay/capabilities.hpp"

#include <cctype>
#include <charconv>
#include <sstream>
#include <string>

namespace ferry::relay {

Capabilities parse_ehlo(const smtp::Reply& reply) {
    Capabilities caps;
    caps.esmtp = true;
    for (size_t i = 1; i < reply.lines.size(); ++i) {
        std::string line = reply.lines[i];
        for (char& c : line) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        std::istringstream words(line);
        std::string keyword;
        words >> keyword;
        if (keyword == "STARTTLS") caps.starttls = true;
        else if (keyword == "PIPELINING") caps.pipelining = true;
        else if (keyword == "8BITMIME") caps.eightbitmime = true;
        else if (keyword == "SMTPUTF8") caps.smtputf8 = true;
        else if (keyword == "CHUNKING") caps.chunking = true;
        else if (keyword == "DSN") caps.dsn = true;
        else if (keyword == "SIZE") {
            std::string n;
            uint64_t v = 0;
            if (words >> n) {
                auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), v);
                if (ec == std::errc() && p == n.data() + n.size() && v > 0) caps.size = v;
            }
        } else if (keyword == "AUTH") {
            std::string mech;
            while (words >> mech) {
                caps.auth_plain |= mech == "PLAIN";
                caps.auth_login |= mech == "LOGIN";
            }
        }
    }
    return caps;
}

std::optional<Error> peer_refusal(const Capabilities& caps, const OutboundMessage& m, const std::string& peer) {
    if (caps.size && m.data.length > *caps.size)
        return make_error(552, "5.3.4", "message size " + std::to_string(m.data.length) + " exceeds the limit of " +
                                            std::to_string(*caps.size) + " bytes of " + peer);
    if (needs_smtputf8(m) && !caps.smtputf8)
        return make_error(553, "5.6.7", peer + " does not support SMTPUTF8, needed for " +
                                            (m.utf8_envelope ? "a UTF-8 address" : "a UTF-8 header"));
    if (m.eight_bit && !caps.eightbitmime && !m.no_seven_bit.empty())
        return make_error(554, "5.6.3",
                          peer + " does not support 8BITMIME and the message cannot be converted: " + m.no_seven_bit);
    return std::nullopt;
}

}  // namespace ferry::relay
