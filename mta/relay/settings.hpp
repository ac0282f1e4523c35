// ferry-relay's settings, read from the configuration once at start (before privileges are dropped).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "common/base/result.hpp"
#include "common/event/tls.hpp"
#include "common/program/config.hpp"
#include "mta/relay/arc_seal.hpp"
#include "mta/relay/dkim_sign.hpp"
#include "mta/relay/passwords.hpp"
#include "mta/relay/tls_policy.hpp"

namespace ferry::relay {

// RFC 5321 4.5.3.2: how long to wait for each of the server's replies, in seconds.
struct Timeouts {
    double connect = 30;
    double greeting = 300;
    double mail = 300;        // also EHLO, STARTTLS, AUTH and RSET
    double rcpt = 300;
    double data = 120;        // the 354 to DATA
    double data_block = 180;  // the peer taking the next block of the message
    double data_done = 600;   // the reply to the final dot (or to BDAT)
};

struct RelaySettings {
    std::string hostname;  // EHLO/HELO name
    Timeouts timeouts;
    double reuse_time = 5;               // seconds an idle connection is kept for the next message
    size_t max_messages_per_connection = 100;
    TlsPolicyMap tls_policy;
    std::optional<TlsContext> tls;       // client credentials; nullopt: STARTTLS is never used
    PasswordMap passwords;               // relayhost credentials
    std::string temp_dir;                // where the data of messages in transfer is kept
    DkimSettings dkim;                   // signing of mail from domains with a key
    ArcSettings arc;                     // sealing of forwarded mail
};

Result<RelaySettings> relay_settings(const Config& config);

}  // namespace ferry::relay
