// DKIM cryptography through GnuTLS: SHA-256, signing keys (RSA, Ed25519) and signature checks (RFC 6376 3.3, RFC 8463).
#pragma once

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/base/result.hpp"
#include "common/verify/dkim_sig.hpp"

namespace ferry::verify::dkim {

// Incremental SHA-256.
class Sha256 {
public:
    Sha256();
    void update(std::string_view bytes);
    std::string finish();  // the 32-octet digest; the object is then spent

private:
    std::unique_ptr<std::remove_pointer_t<gnutls_hash_hd_t>, void (*)(gnutls_hash_hd_t)> h_;
};
std::string sha256(std::string_view bytes);

// A private signing key, loaded from PEM (PKCS#8 or PKCS#1) or made anew.
class PrivateKey {
public:
    static Result<PrivateKey> generate(Algorithm a);  // RSA 2048 bits, or Ed25519
    static Result<PrivateKey> from_pem(std::string_view pem);
    Algorithm algorithm() const { return algorithm_; }
    // PKCS#8 PEM, unencrypted, as OpenDKIM and rspamd read it.
    Result<std::string> pem() const;
    // The p= value of the key record: SubjectPublicKeyInfo (RSA) or the raw 32 octets (Ed25519, RFC 8463 4), base64.
    Result<std::string> public_key_base64() const;
    // The b= octets over the canonical header data (Ed25519 signs its SHA-256, RFC 8463 3).
    Result<std::string> sign(std::string_view data) const;

private:
    using Handle = std::unique_ptr<std::remove_pointer_t<gnutls_privkey_t>, void (*)(gnutls_privkey_t)>;
    PrivateKey(Handle h, Algorithm a) : key_(std::move(h)), algorithm_(a) {}
    Handle key_;
    Algorithm algorithm_;
};

// Checks `signature` over `data` with the key record's p= octets; false with `why` when the key does
// not fit the algorithm, is too short (RSA under 1024 bits, RFC 8301) or the signature is wrong.
bool verify_signature(Algorithm a, std::string_view public_key, std::string_view data, std::string_view signature,
                      std::string* why);

// verify_signature keeps the last kPublicKeyCacheSize imported keys (by algorithm and octets), process-wide.
inline constexpr size_t kPublicKeyCacheSize = 1000;
struct KeyCacheStats {
    uint64_t imports = 0;  // keys decoded (a failed import counts too: unusable keys are not kept)
    uint64_t hits = 0;     // keys found already decoded
};
KeyCacheStats public_key_cache_stats();

}  // namespace ferry::verify::dkim
