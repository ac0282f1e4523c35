// SCRAM-SHA-256 (RFC 5802, RFC 7677): the stored keys and the server side of the exchange, pure apart from GnuTLS.
#include "common/auth/scram.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <charconv>
#include <vector>

#include "common/auth/sasl.hpp"

namespace ferry::sasl {

namespace {

constexpr size_t kHashSize = 32;

Error syntax(std::string detail) { return make_error(501, "5.5.2", "Cannot decode response", std::move(detail)); }
Error refused(std::string detail) {
    return make_error(535, "5.7.8", "Authentication credentials invalid", std::move(detail));
}

std::string hmac(std::string_view key, std::string_view data) {
    std::string out(kHashSize, '\0');
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, key.data(), key.size(), data.data(), data.size(), out.data());
    return out;
}

std::string sha256(std::string_view data) {
    std::string out(kHashSize, '\0');
    gnutls_hash_fast(GNUTLS_DIG_SHA256, data.data(), data.size(), out.data());
    return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    for (size_t at = 0;;) {
        size_t next = s.find(sep, at);
        out.push_back(s.substr(at, next == std::string_view::npos ? std::string_view::npos : next - at));
        if (next == std::string_view::npos) return out;
        at = next + 1;
    }
}

// RFC 5802 saslname: "=2C" is ',' and "=3D" is '='; any other '=' is an error.
std::optional<std::string> decode_saslname(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '=') {
            out += s[i];
            continue;
        }
        std::string_view esc = s.substr(i + 1, 2);
        if (esc == "2C") out += ',';
        else if (esc == "3D") out += '=';
        else return std::nullopt;
        i += 2;
    }
    return out;
}

bool printable_nonce(std::string_view n) {
    if (n.empty()) return false;
    for (char c : n)
        if (c < 0x21 || c > 0x7e || c == ',') return false;
    return true;
}

}  // namespace

Result<ScramKeys> scram_derive(std::string_view password, std::string_view salt, uint32_t iterations) {
    if (iterations == 0 || salt.empty()) return make_error(0, "", "SCRAM needs a salt and iterations");
    std::string salted(kHashSize, '\0');
    gnutls_datum_t key{reinterpret_cast<unsigned char*>(const_cast<char*>(password.data())), static_cast<unsigned>(password.size())};
    gnutls_datum_t s{reinterpret_cast<unsigned char*>(const_cast<char*>(salt.data())), static_cast<unsigned>(salt.size())};
    if (gnutls_pbkdf2(GNUTLS_MAC_SHA256, &key, &s, iterations, salted.data(), salted.size()) != 0)
        return make_error(0, "", "PBKDF2 failed");
    ScramKeys k;
    k.iterations = iterations;
    k.salt = salt;
    k.stored_key = sha256(hmac(salted, "Client Key"));
    k.server_key = hmac(salted, "Server Key");
    std::fill(salted.begin(), salted.end(), '\0');
    return k;
}

Result<ScramKeys> scram_new(std::string_view password) {
    std::string salt(16, '\0');
    if (gnutls_rnd(GNUTLS_RND_NONCE, salt.data(), salt.size()) != 0) return make_error(0, "", "no random bytes");
    return scram_derive(password, salt);
}

std::string scram_encode(const ScramKeys& k) {
    return "SCRAM-SHA-256:" + std::to_string(k.iterations) + ":" + base64_encode(k.salt) + ":" +
           base64_encode(k.stored_key) + ":" + base64_encode(k.server_key);
}

std::optional<ScramKeys> scram_decode(std::string_view text) {
    auto f = split(text, ':');
    if (f.size() != 5 || f[0] != "SCRAM-SHA-256") return std::nullopt;
    ScramKeys k;
    auto [p, ec] = std::from_chars(f[1].data(), f[1].data() + f[1].size(), k.iterations);
    if (ec != std::errc() || p != f[1].data() + f[1].size() || k.iterations == 0) return std::nullopt;
    auto salt = base64_decode(f[2]), stored = base64_decode(f[3]), server = base64_decode(f[4]);
    if (!salt || !stored || !server || salt->empty() || stored->size() != kHashSize || server->size() != kHashSize)
        return std::nullopt;
    k.salt = std::move(*salt);
    k.stored_key = std::move(*stored);
    k.server_key = std::move(*server);
    return k;
}

ScramKeys scram_dummy(std::string_view user) {
    // A per-process secret: the salt of a name stays the same while the daemon runs, and tells nothing.
    static const std::string secret = [] {
        std::string s(32, '\0');
        gnutls_rnd(GNUTLS_RND_NONCE, s.data(), s.size());
        return s;
    }();
    ScramKeys k;
    k.iterations = kScramIterations;
    k.salt = hmac(secret, std::string("salt:") + std::string(user)).substr(0, 16);
    k.stored_key = hmac(secret, "stored:" + std::string(user));
    k.server_key = hmac(secret, "server:" + std::string(user));
    return k;
}

std::string scram_nonce() {
    std::string raw(24, '\0');
    gnutls_rnd(GNUTLS_RND_NONCE, raw.data(), raw.size());
    return base64_encode(raw);
}

Result<std::string> ScramServer::client_first(std::string_view message) {
    if (message.size() > kScramMaxMessage) return refused("SCRAM client-first message too long");
    // gs2-header: cbind flag, authzid, then the bare message.
    size_t c1 = message.find(',');
    size_t c2 = c1 == std::string_view::npos ? c1 : message.find(',', c1 + 1);
    if (c2 == std::string_view::npos) return syntax("SCRAM client-first without a GS2 header");
    std::string_view flag = message.substr(0, c1), authzid = message.substr(c1 + 1, c2 - c1 - 1);
    if (flag.starts_with("p=")) return refused("SCRAM channel binding asked for and not offered");
    if (flag != "n" && flag != "y") return syntax("SCRAM bad channel-binding flag");
    gs2_header_ = std::string(message.substr(0, c2 + 1));
    client_first_bare_ = std::string(message.substr(c2 + 1));
    auto f = split(client_first_bare_, ',');
    if (f[0].starts_with("m=")) return refused("SCRAM mandatory extension not supported");
    if (f.size() < 2 || !f[0].starts_with("n=") || !f[1].starts_with("r=")) return syntax("SCRAM client-first without n= and r=");
    auto user = decode_saslname(f[0].substr(2));
    if (!user || user->empty() || user->size() > Limits{}.max_identity) return syntax("SCRAM bad user name");
    for (char c : *user)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return refused("SCRAM user name with a control character");
    if (!authzid.empty()) {
        auto z = authzid.starts_with("a=") ? decode_saslname(authzid.substr(2)) : std::nullopt;
        if (!z) return syntax("SCRAM bad authzid");
        if (*z != *user) return refused("SCRAM authzid differs from the user (proxy login refused)");
    }
    if (!printable_nonce(f[1].substr(2))) return syntax("SCRAM bad client nonce");
    nonce_ = std::string(f[1].substr(2)) + server_nonce_;
    return *user;
}

std::string ScramServer::server_first(const ScramKeys& keys) {
    server_first_ = "r=" + nonce_ + ",s=" + base64_encode(keys.salt) + ",i=" + std::to_string(keys.iterations);
    return server_first_;
}

Result<void> ScramServer::client_final(std::string_view message) {
    if (message.size() > kScramMaxMessage) return refused("SCRAM client-final message too long");
    size_t p = message.rfind(",p=");
    if (p == std::string_view::npos) return syntax("SCRAM client-final without a proof");
    auto f = split(message.substr(0, p), ',');
    if (f.size() < 2 || !f[0].starts_with("c=") || !f[1].starts_with("r=")) return syntax("SCRAM client-final without c= and r=");
    // Without channel binding the c= attribute is the GS2 header again, in base64.
    if (f[0].substr(2) != base64_encode(gs2_header_)) return refused("SCRAM channel binding does not match");
    if (f[1].substr(2) != nonce_) return refused("SCRAM nonce does not match");
    auto proof = base64_decode(message.substr(p + 3));
    if (!proof || proof->size() != kHashSize) return syntax("SCRAM bad proof");
    final_without_proof_ = std::string(message.substr(0, p));
    proof_ = std::move(*proof);
    return {};
}

bool ScramServer::verify(const ScramKeys& keys) const {
    if (proof_.size() != kHashSize || keys.stored_key.size() != kHashSize) return false;
    std::string auth_message = client_first_bare_ + "," + server_first_ + "," + final_without_proof_;
    std::string signature = hmac(keys.stored_key, auth_message);
    std::string client_key(kHashSize, '\0');
    for (size_t i = 0; i < kHashSize; ++i) client_key[i] = static_cast<char>(proof_[i] ^ signature[i]);
    return equal_constant_time(sha256(client_key), keys.stored_key);
}

std::string ScramServer::server_final(const ScramKeys& keys) const {
    std::string auth_message = client_first_bare_ + "," + server_first_ + "," + final_without_proof_;
    return "v=" + base64_encode(hmac(keys.server_key, auth_message));
}

}  // namespace ferry::sasl
