// SCRAM-SHA-256 (RFC 5802, RFC 7677): the stored keys and the server side of the exchange, pure apart from GnuTLS.
//
// ferry-admin derives ScramKeys when a password is set and keeps scram_encode() of them in the
// account record; the plain password is never kept. A daemon's exchange:
//   ScramServer s(random_nonce());
//   auto user = s.client_first(decoded);      // then look the account up: its keys, or scram_dummy()
//   send s.server_first(keys);
//   auto ok = s.client_final(decoded);         // syntax, channel binding, nonce
//   s.verify(keys)                             // on a worker, like crypt(3); constant time
//   send s.server_final(keys) as the last challenge, then success.
// Channel binding is not offered (no SCRAM-SHA-256-PLUS): a client asking for it ("p=") is refused.
// Passwords are used as given (no SASLprep): ASCII passwords, the usual case, are unaffected.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.hpp"

namespace ferry::sasl {

inline constexpr uint32_t kScramIterations = 4096;      // RFC 7677's minimum, and what clients expect
inline constexpr size_t kScramMaxMessage = 2048;        // a client message, decoded

struct ScramKeys {
    uint32_t iterations = 0;
    std::string salt;        // raw bytes
    std::string stored_key;  // H(ClientKey), 32 bytes
    std::string server_key;  // HMAC(SaltedPassword, "Server Key"), 32 bytes
};

// PBKDF2-HMAC-SHA-256 of the password, then the two keys (RFC 5802 section 3).
Result<ScramKeys> scram_derive(std::string_view password, std::string_view salt, uint32_t iterations = kScramIterations);
// New keys with 16 random bytes of salt.
Result<ScramKeys> scram_new(std::string_view password);
// "SCRAM-SHA-256:<iterations>:<salt>:<StoredKey>:<ServerKey>", the three in base64: the account field.
std::string scram_encode(const ScramKeys& keys);
std::optional<ScramKeys> scram_decode(std::string_view text);
// Keys nobody can match, the same for the same name (an unknown user, or an account without SCRAM
// data, looks like any other: a salt that does not change from one try to the next).
ScramKeys scram_dummy(std::string_view user);

class ScramServer {
public:
    explicit ScramServer(std::string server_nonce) : server_nonce_(std::move(server_nonce)) {}

    // The client-first-message (decoded): the user name, or 535 5.7.8 for what ferry refuses
    // (channel binding, a different authzid, "m=") and 501 5.5.2 for bad syntax.
    Result<std::string> client_first(std::string_view message);
    std::string server_first(const ScramKeys& keys);
    // The client-final-message (decoded): its channel binding and nonce must be what was sent.
    Result<void> client_final(std::string_view message);
    // The proof against the keys, in constant time.
    bool verify(const ScramKeys& keys) const;
    // "v=<ServerSignature>", the server-final-message of a verified exchange.
    std::string server_final(const ScramKeys& keys) const;

private:
    std::string server_nonce_;
    std::string gs2_header_, client_first_bare_, nonce_, server_first_, final_without_proof_, proof_;
};

// 24 random bytes in base64 (no ','), for ScramServer.
std::string scram_nonce();

}  // namespace ferry::sasl
