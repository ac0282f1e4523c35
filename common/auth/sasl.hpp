// SASL for smtpd (RFC 4954), popd (RFC 5034) and imapd: strict base64, PLAIN (RFC 4616) and LOGIN.
//
// Pure functions and a small state machine; no I/O. A daemon's AUTH command does:
//   auto mech = sasl::parse_mechanism(name);                 // nullopt -> 504 5.5.4 / -ERR
//   sasl::Exchange ex(*mech);
//   sasl::Step s = ex.start(initial_response);              // from "AUTH PLAIN <ir>", nullopt if absent
//   while (s.kind == Step::Kind::challenge) { send "334 " + s.challenge (SMTP) or "+ " + s.challenge (POP3/IMAP);
//                                       read one line; s = ex.next(line); }
//   Kind::done -> s.creds.authcid / s.creds.password go to Authenticator::check (common/auth/auth.hpp),
//                 or with s.scram set (SCRAM-SHA-256) s.creds.authcid / s.scram to Authenticator::check_scram;
//   Kind::cancelled / Kind::error -> reply s.error.reply() (SMTP) or "-ERR " + s.error.text.
// Each client response line is bounded by the daemon's own line limit; Limits bound what it decodes to.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/auth/scram.hpp"
#include "common/base/result.hpp"

namespace ferry::sasl {

// RFC 4616 servers MUST accept identities and passwords of up to 255 octets; we allow longer passwords.
struct Limits {
    size_t max_identity = 255;   // authzid, authcid, LOGIN user name
    size_t max_password = 1024;
};

// The mechanisms ferry offers, for "250-AUTH PLAIN LOGIN" and "SASL PLAIN LOGIN".
inline constexpr const char* kMechanisms = "PLAIN LOGIN";
// With SCRAM-SHA-256, for a daemon whose Exchange has a KeyLookup (Authenticator::scram_keys).
inline constexpr const char* kMechanismsWithScram = "PLAIN LOGIN SCRAM-SHA-256";

// RFC 4648 base64 with padding.
std::string base64_encode(std::string_view data);
// Strict decode: length a multiple of 4, only the alphabet, "=" padding only at the end, unused bits
// zero, no whitespace. The empty string decodes to empty. Errors are 501 5.5.2.
Result<std::string> base64_decode(std::string_view text);

struct Credentials {
    std::string authzid;   // empty, or equal to authcid
    std::string authcid;   // the login name
    std::string password;
};

// RFC 4616 message: [authzid] NUL authcid NUL passwd, already base64-decoded. authcid and passwd
// must be non-empty and NUL-free; an authzid must equal authcid (ferry does no proxy logins).
// Identities (here and LOGIN's user name) with a control byte (< 0x20, 0x7f) are refused: 535 5.7.8.
Result<Credentials> parse_plain(std::string_view message, const Limits& limits = {});
// base64 text -> parse_plain; refuses oversize text before decoding it.
Result<Credentials> decode_plain(std::string_view base64, const Limits& limits = {});

enum class Mechanism { plain, login, scram_sha256 };
// Case-insensitive "PLAIN" / "LOGIN" (and "SCRAM-SHA-256" when `with_scram`, for a daemon that
// gives its Exchange a KeyLookup); nullopt for anything else.
std::optional<Mechanism> parse_mechanism(std::string_view name, bool with_scram = false);

// SCRAM's server-first message needs the account's salt and iterations: Authenticator::scram_keys.
using KeyLookup = std::function<Result<ScramKeys>(const std::string& user)>;

// A response line of exactly "*": the client cancels the exchange (RFC 4954 section 4).
inline bool is_cancel(std::string_view line) { return line == "*"; }

struct Step {
    enum class Kind { challenge, done, cancelled, error };
    Kind kind = Kind::error;
    std::string challenge;    // base64, for Kind::challenge ("" for PLAIN's empty challenge)
    Credentials creds;        // for Kind::done (SCRAM: authcid only)
    Error error;              // for cancelled (501 5.7.0) and error (501 5.5.2 / 535 5.7.8)
    // SCRAM, for Kind::done: the exchange, to go to Authenticator::check_scram instead of
    // check() (which applies the limits and the failure delay and verifies it again).
    std::shared_ptr<const ScramServer> scram;
};

// One authentication exchange. LOGIN asks "Username:" then "Password:" (base64 challenges);
// an initial response to LOGIN is the user name. Use once; after done/cancelled/error it is finished.
class Exchange {
public:
    explicit Exchange(Mechanism mech, Limits limits = {}, KeyLookup lookup = {})
        : mech_(mech), limits_(limits), lookup_(std::move(lookup)) {}

    // `initial_response`: the base64 argument after the mechanism name, nullopt when absent;
    // "=" stands for an empty initial response (RFC 4954).
    Step start(std::optional<std::string_view> initial_response);
    // The client's next response line (without CRLF), after a challenge.
    Step next(std::string_view line);
    bool finished() const { return state_ == State::finished; }

private:
    enum class State { initial, want_plain, want_user, want_password, want_client_first, want_client_final,
                       want_confirm, finished };
    Step finish(Step s);
    Step cancel();
    Step next_plain(std::string_view base64);
    Step on_user(std::string_view base64);
    Step on_password(std::string_view base64);
    Step on_client_first(std::string_view base64);
    Step on_client_final(std::string_view base64);
    Step on_confirm(std::string_view line);
    Step scram_done();

    Mechanism mech_;
    Limits limits_;
    State state_ = State::initial;
    std::string user_;
    KeyLookup lookup_;
    std::shared_ptr<ScramServer> scram_;
    ScramKeys keys_;
};

}  // namespace ferry::sasl
