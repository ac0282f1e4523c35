// SASL for smtpd (RFC 4954), popd (RFC 5034) and imapd: strict base64, PLAIN (RFC 4616) and LOGIN.
#include "common/auth/sasl.hpp"

#include <array>
#include <cctype>
#include <cstdint>

namespace ferry::sasl {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// 0..63 for alphabet characters, -1 for everything else.
constexpr std::array<signed char, 256> make_table() {
    std::array<signed char, 256> t{};
    for (auto& v : t) v = -1;
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<signed char>(i);
    return t;
}
constexpr auto kDecode = make_table();

Error syntax_error(std::string detail) {
    return make_error(501, "5.5.2", "Cannot decode response", std::move(detail));
}
Error bad_credentials(std::string detail) {
    return make_error(535, "5.7.8", "Authentication credentials invalid", std::move(detail));
}

size_t encoded_size(size_t raw) { return (raw + 2) / 3 * 4; }

// A control byte in a login name could forge lines in the log that records it, and no address has one.
bool has_control(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
    return false;
}

}  // namespace

std::string base64_encode(std::string_view data) {
    std::string out;
    out.reserve(encoded_size(data.size()));
    size_t i = 0;
    for (; i + 3 <= data.size(); i += 3) {
        uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(data[i])) << 16 |
                     static_cast<uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8 |
                     static_cast<unsigned char>(data[i + 2]);
        for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(v >> shift) & 63];
    }
    size_t rest = data.size() - i;
    if (rest == 0) return out;
    uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(data[i])) << 16;
    if (rest == 2) v |= static_cast<uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
    return out;
}

Result<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return syntax_error("base64 length not a multiple of 4");
    size_t pad = 0;
    if (!text.empty() && text.back() == '=') pad = text[text.size() - 2] == '=' ? 2 : 1;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        bool last = i + 4 == text.size();
        uint32_t v = 0;
        for (size_t j = 0; j < 4; ++j) {
            unsigned char c = static_cast<unsigned char>(text[i + j]);
            bool is_pad = last && j >= 4 - pad;
            if (is_pad) {
                v <<= 6;
                continue;
            }
            if (kDecode[c] < 0) return syntax_error("invalid base64 character");
            v = v << 6 | static_cast<uint32_t>(kDecode[c]);
        }
        // Bits that padding leaves unused must be zero (RFC 4648 section 3.5), so each text has one decoding.
        if ((pad == 1 && last && (v & 0xff) != 0) || (pad == 2 && last && (v & 0xffff) != 0))
            return syntax_error("non-canonical base64 padding");
        size_t n = last ? 3 - pad : 3;
        for (size_t k = 0; k < n; ++k) out += static_cast<char>((v >> (16 - 8 * k)) & 0xff);
    }
    return out;
}

Result<Credentials> parse_plain(std::string_view message, const Limits& limits) {
    size_t nul1 = message.find('\0');
    if (nul1 == std::string_view::npos) return bad_credentials("PLAIN message without NUL separators");
    size_t nul2 = message.find('\0', nul1 + 1);
    if (nul2 == std::string_view::npos) return bad_credentials("PLAIN message with one NUL separator");
    Credentials c;
    c.authzid = message.substr(0, nul1);
    c.authcid = message.substr(nul1 + 1, nul2 - nul1 - 1);
    c.password = message.substr(nul2 + 1);
    if (c.password.find('\0') != std::string::npos) return bad_credentials("PLAIN message with extra NUL");
    if (c.authcid.empty()) return bad_credentials("PLAIN message with empty authcid");
    if (c.password.empty()) return bad_credentials("PLAIN message with empty password");
    if (c.authzid.size() > limits.max_identity || c.authcid.size() > limits.max_identity)
        return bad_credentials("PLAIN identity longer than " + std::to_string(limits.max_identity) + " octets");
    if (c.password.size() > limits.max_password)
        return bad_credentials("PLAIN password longer than " + std::to_string(limits.max_password) + " octets");
    if (has_control(c.authzid) || has_control(c.authcid))
        return bad_credentials("PLAIN identity with a control character");
    if (!c.authzid.empty() && c.authzid != c.authcid)
        return bad_credentials("PLAIN authzid differs from authcid (proxy login refused)");
    return c;
}

Result<Credentials> decode_plain(std::string_view base64, const Limits& limits) {
    if (base64.size() > encoded_size(2 * limits.max_identity + limits.max_password + 2))
        return bad_credentials("PLAIN response too long");
    auto raw = base64_decode(base64);
    if (!raw) return raw.error();
    return parse_plain(raw.value(), limits);
}

std::optional<Mechanism> parse_mechanism(std::string_view name, bool with_scram) {
    auto iequals = [](std::string_view a, std::string_view b) {
        if (a.size() != b.size()) return false;
        for (size_t i = 0; i < a.size(); ++i)
            if (std::toupper(static_cast<unsigned char>(a[i])) != b[i]) return false;
        return true;
    };
    if (iequals(name, "PLAIN")) return Mechanism::plain;
    if (iequals(name, "LOGIN")) return Mechanism::login;
    if (with_scram && iequals(name, "SCRAM-SHA-256")) return Mechanism::scram_sha256;
    return std::nullopt;
}

Step Exchange::finish(Step s) {
    state_ = State::finished;
    user_.clear();
    return s;
}

namespace {

Step challenge_step(std::string text) {
    Step s;
    s.kind = Step::Kind::challenge;
    s.challenge = base64_encode(text);
    return s;
}

Step error_step(Error e) {
    Step s;
    s.kind = Step::Kind::error;
    s.error = std::move(e);
    return s;
}

Step done_step(Credentials c) {
    Step s;
    s.kind = Step::Kind::done;
    s.creds = std::move(c);
    return s;
}

}  // namespace

Step Exchange::start(std::optional<std::string_view> initial_response) {
    if (state_ != State::initial) return finish(error_step(syntax_error("SASL exchange already started")));
    if (initial_response && *initial_response == "=") initial_response = std::string_view();
    if (mech_ == Mechanism::scram_sha256) {
        if (!lookup_) return finish(error_step(make_error(504, "5.5.4", "Unrecognized authentication type", "SCRAM without keys")));
        if (!initial_response || initial_response->empty()) {
            state_ = State::want_client_first;
            return challenge_step("");
        }
        return on_client_first(*initial_response);
    }
    if (mech_ == Mechanism::plain) {
        if (!initial_response) {
            state_ = State::want_plain;
            return challenge_step("");
        }
        return next_plain(*initial_response);
    }
    if (!initial_response) {
        state_ = State::want_user;
        return challenge_step("Username:");
    }
    return on_user(*initial_response);
}

Step Exchange::next_plain(std::string_view line) {
    if (is_cancel(line)) return cancel();
    auto c = decode_plain(line, limits_);
    if (!c) return finish(error_step(c.error()));
    return finish(done_step(std::move(c.value())));
}

Step Exchange::on_user(std::string_view base64) {
    if (is_cancel(base64)) return cancel();
    if (base64.size() > encoded_size(limits_.max_identity)) return finish(error_step(bad_credentials("LOGIN user name too long")));
    auto user = base64_decode(base64);
    if (!user) return finish(error_step(user.error()));
    if (user.value().empty() || user.value().find('\0') != std::string::npos)
        return finish(error_step(bad_credentials("LOGIN user name empty or with NUL")));
    if (user.value().size() > limits_.max_identity) return finish(error_step(bad_credentials("LOGIN user name too long")));
    if (has_control(user.value()))
        return finish(error_step(bad_credentials("LOGIN user name with a control character")));
    user_ = std::move(user.value());
    state_ = State::want_password;
    return challenge_step("Password:");
}

Step Exchange::on_password(std::string_view base64) {
    if (is_cancel(base64)) return cancel();
    if (base64.size() > encoded_size(limits_.max_password)) return finish(error_step(bad_credentials("LOGIN password too long")));
    auto pass = base64_decode(base64);
    if (!pass) return finish(error_step(pass.error()));
    if (pass.value().empty() || pass.value().find('\0') != std::string::npos)
        return finish(error_step(bad_credentials("LOGIN password empty or with NUL")));
    if (pass.value().size() > limits_.max_password) return finish(error_step(bad_credentials("LOGIN password too long")));
    Credentials c;
    c.authcid = std::move(user_);
    c.password = std::move(pass.value());
    return finish(done_step(std::move(c)));
}

Step Exchange::on_client_first(std::string_view base64) {
    if (is_cancel(base64)) return cancel();
    if (base64.size() > encoded_size(kScramMaxMessage)) return finish(error_step(bad_credentials("SCRAM message too long")));
    auto msg = base64_decode(base64);
    if (!msg) return finish(error_step(msg.error()));
    scram_ = std::make_shared<ScramServer>(scram_nonce());
    auto user = scram_->client_first(*msg);
    if (!user) return finish(error_step(user.error()));
    auto keys = lookup_(*user);
    if (!keys) return finish(error_step(make_error(454, "4.7.0", "Temporary authentication failure", keys.error().what())));
    user_ = std::move(*user);
    keys_ = std::move(*keys);
    state_ = State::want_client_final;
    return challenge_step(scram_->server_first(keys_));
}

Step Exchange::on_client_final(std::string_view base64) {
    if (is_cancel(base64)) return cancel();
    if (base64.size() > encoded_size(kScramMaxMessage)) return finish(error_step(bad_credentials("SCRAM message too long")));
    auto msg = base64_decode(base64);
    if (!msg) return finish(error_step(msg.error()));
    if (auto r = scram_->client_final(*msg); !r) return finish(error_step(r.error()));
    // A wrong proof goes to the Authenticator at once (it fails there, after the delay); the
    // server's signature goes out only for a right one: sent before, it would let a client
    // without the password test guesses offline.
    if (!scram_->verify(keys_)) return scram_done();
    state_ = State::want_confirm;
    return challenge_step(scram_->server_final(keys_));
}

// RFC 5802 section 5: the client answers the server-final message with an empty response.
Step Exchange::on_confirm(std::string_view line) {
    if (is_cancel(line)) return cancel();
    if (!line.empty()) return finish(error_step(syntax_error("SCRAM: the answer to the server signature must be empty")));
    return scram_done();
}

Step Exchange::scram_done() {
    Step s;
    s.kind = Step::Kind::done;
    s.creds.authcid = std::move(user_);
    s.scram = std::move(scram_);
    return finish(std::move(s));
}

Step Exchange::cancel() {
    Step s;
    s.kind = Step::Kind::cancelled;
    s.error = make_error(501, "5.7.0", "Authentication cancelled", "client sent \"*\"");
    return finish(std::move(s));
}

Step Exchange::next(std::string_view line) {
    switch (state_) {
        case State::want_plain: return next_plain(line);
        case State::want_user: return on_user(line);
        case State::want_password: return on_password(line);
        case State::want_client_first: return on_client_first(line);
        case State::want_client_final: return on_client_final(line);
        case State::want_confirm: return on_confirm(line);
        case State::initial:
        case State::finished: break;
    }
    return finish(error_step(syntax_error("no SASL challenge outstanding")));
}

}  // namespace ferry::sasl
