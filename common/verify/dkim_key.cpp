// DKIM cryptography through GnuTLS: SHA-256, RSA and Ed25519 keys, signing and verification.
#include "common/verify/dkim_key.hpp"

#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <deque>
#include <map>
#include <mutex>

namespace ferry::verify::dkim {

namespace {

struct Datum {
    gnutls_datum_t d{nullptr, 0};
    ~Datum() { gnutls_free(d.data); }
    std::string str() const { return std::string(reinterpret_cast<const char*>(d.data), d.size); }
};

gnutls_datum_t view(std::string_view s) {
    return {reinterpret_cast<unsigned char*>(const_cast<char*>(s.data())), static_cast<unsigned>(s.size())};
}

Error crypto_error(const char* what, int rc) { return make_error(0, "", std::string(what) + ": " + gnutls_strerror(rc)); }

void free_hash(gnutls_hash_hd_t h) {
    if (h) gnutls_hash_deinit(h, nullptr);
}

using X509Key = std::unique_ptr<std::remove_pointer_t<gnutls_x509_privkey_t>, void (*)(gnutls_x509_privkey_t)>;
using PubKey = std::unique_ptr<std::remove_pointer_t<gnutls_pubkey_t>, void (*)(gnutls_pubkey_t)>;

PubKey new_pubkey() {
    gnutls_pubkey_t p = nullptr;
    gnutls_pubkey_init(&p);
    return PubKey(p, gnutls_pubkey_deinit);
}

// The public key of a record: SubjectPublicKeyInfo DER for RSA, the raw point for Ed25519.
PubKey import_public(Algorithm a, std::string_view key, std::string* why) {
    PubKey pub = new_pubkey();
    gnutls_datum_t d = view(key);
    int rc = a == Algorithm::ed25519_sha256 ? gnutls_pubkey_import_ecc_raw(pub.get(), GNUTLS_ECC_CURVE_ED25519, &d, nullptr)
                                            : gnutls_pubkey_import(pub.get(), &d, GNUTLS_X509_FMT_DER);
    if (rc < 0 || (a == Algorithm::ed25519_sha256 && key.size() != 32)) {
        if (why) *why = "unusable public key";
        return PubKey(nullptr, gnutls_pubkey_deinit);
    }
    unsigned bits = 0;
    int pk = gnutls_pubkey_get_pk_algorithm(pub.get(), &bits);
    bool fits = a == Algorithm::ed25519_sha256 ? pk == GNUTLS_PK_EDDSA_ED25519 : pk == GNUTLS_PK_RSA;
    if (!fits || (pk == GNUTLS_PK_RSA && bits < 1024)) {
        if (why) *why = fits ? "RSA key shorter than 1024 bits" : "key type does not match a=";
        return PubKey(nullptr, gnutls_pubkey_deinit);
    }
    return pub;
}

using SharedKey = std::shared_ptr<std::remove_pointer_t<gnutls_pubkey_t>>;

// Imported public keys by algorithm and p= octets, so that repeated mail from one signer does not
// decode the same key each time; the oldest goes when full. Checks run on worker threads: locked.
class KeyCache {
public:
    SharedKey get(Algorithm a, std::string_view key, std::string* why) {
        std::string id = std::to_string(static_cast<int>(a)) + ":" + std::string(key);
        {
            std::lock_guard lock(mu_);
            if (auto it = keys_.find(id); it != keys_.end()) {
                ++stats_.hits;
                return it->second;
            }
            ++stats_.imports;
        }
        PubKey pub = import_public(a, key, why);
        if (!pub) return nullptr;
        SharedKey shared(pub.release(), gnutls_pubkey_deinit);
        std::lock_guard lock(mu_);
        if (keys_.emplace(id, shared).second) {
            order_.push_back(id);
            if (order_.size() > kPublicKeyCacheSize) {
                keys_.erase(order_.front());
                order_.pop_front();
            }
        }
        return shared;
    }

    KeyCacheStats stats() {
        std::lock_guard lock(mu_);
        return stats_;
    }

private:
    std::mutex mu_;
    std::map<std::string, SharedKey, std::less<>> keys_;
    std::deque<std::string> order_;  // oldest first
    KeyCacheStats stats_;
};

KeyCache& key_cache() {
    static KeyCache cache;
    return cache;
}

}  // namespace

KeyCacheStats public_key_cache_stats() { return key_cache().stats(); }

Sha256::Sha256() : h_(nullptr, free_hash) {
    gnutls_hash_hd_t h = nullptr;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) abort();  // SHA-256 is always there
    h_.reset(h);
}

void Sha256::update(std::string_view bytes) {
    if (!bytes.empty()) gnutls_hash(h_.get(), bytes.data(), bytes.size());
}

std::string Sha256::finish() {
    std::string out(32, '\0');
    gnutls_hash_output(h_.get(), out.data());
    return out;
}

std::string sha256(std::string_view bytes) {
    Sha256 h;
    h.update(bytes);
    return h.finish();
}

Result<PrivateKey> PrivateKey::generate(Algorithm a) {
    gnutls_x509_privkey_t x = nullptr;
    gnutls_x509_privkey_init(&x);
    X509Key xk(x, gnutls_x509_privkey_deinit);
    int rc = a == Algorithm::rsa_sha256
                 ? gnutls_x509_privkey_generate(x, GNUTLS_PK_RSA, 2048, 0)
                 : gnutls_x509_privkey_generate(x, GNUTLS_PK_EDDSA_ED25519, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519), 0);
    if (rc < 0) return crypto_error("generating the key", rc);
    Datum pem;
    if ((rc = gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN, &pem.d)) < 0)
        return crypto_error("exporting the key", rc);
    return from_pem(pem.str());
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
    gnutls_privkey_t k = nullptr;
    gnutls_privkey_init(&k);
    Handle h(k, gnutls_privkey_deinit);
    gnutls_datum_t d = view(pem);
    if (int rc = gnutls_privkey_import_x509_raw(k, &d, GNUTLS_X509_FMT_PEM, nullptr, 0); rc < 0)
        return crypto_error("reading the key", rc);
    int pk = gnutls_privkey_get_pk_algorithm(k, nullptr);
    if (pk == GNUTLS_PK_RSA) return PrivateKey(std::move(h), Algorithm::rsa_sha256);
    if (pk == GNUTLS_PK_EDDSA_ED25519) return PrivateKey(std::move(h), Algorithm::ed25519_sha256);
    return make_error(0, "", "the key is neither RSA nor Ed25519");
}

Result<std::string> PrivateKey::pem() const {
    gnutls_x509_privkey_t x = nullptr;
    if (int rc = gnutls_privkey_export_x509(key_.get(), &x); rc < 0) return crypto_error("exporting the key", rc);
    X509Key xk(x, gnutls_x509_privkey_deinit);
    Datum out;
    if (int rc = gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN, &out.d); rc < 0)
        return crypto_error("exporting the key", rc);
    return out.str();
}

Result<std::string> PrivateKey::public_key_base64() const {
    PubKey pub = new_pubkey();
    if (int rc = gnutls_pubkey_import_privkey(pub.get(), key_.get(), 0, 0); rc < 0) return crypto_error("public key", rc);
    Datum out;
    int rc = 0;
    if (algorithm_ == Algorithm::ed25519_sha256) {
        gnutls_ecc_curve_t curve;
        rc = gnutls_pubkey_export_ecc_raw(pub.get(), &curve, &out.d, nullptr);
    } else {
        rc = gnutls_pubkey_export2(pub.get(), GNUTLS_X509_FMT_DER, &out.d);
    }
    if (rc < 0) return crypto_error("public key", rc);
    return encode_base64(out.str());
}

Result<std::string> PrivateKey::sign(std::string_view data) const {
    Datum sig;
    int rc = 0;
    if (algorithm_ == Algorithm::ed25519_sha256) {
        std::string digest = sha256(data);
        gnutls_datum_t d = view(digest);
        rc = gnutls_privkey_sign_data2(key_.get(), GNUTLS_SIGN_EDDSA_ED25519, 0, &d, &sig.d);
    } else {
        gnutls_datum_t d = view(data);
        rc = gnutls_privkey_sign_data2(key_.get(), GNUTLS_SIGN_RSA_SHA256, 0, &d, &sig.d);
    }
    if (rc < 0) return crypto_error("signing", rc);
    return sig.str();
}

bool verify_signature(Algorithm a, std::string_view public_key, std::string_view data, std::string_view signature,
                      std::string* why) {
    SharedKey pub = key_cache().get(a, public_key, why);
    if (!pub) return false;
    std::string digest;
    gnutls_datum_t d = view(data), s = view(signature);
    if (a == Algorithm::ed25519_sha256) {
        digest = sha256(data);
        d = view(digest);
    }
    int rc = gnutls_pubkey_verify_data2(pub.get(), a == Algorithm::ed25519_sha256 ? GNUTLS_SIGN_EDDSA_ED25519 : GNUTLS_SIGN_RSA_SHA256,
                                        0, &d, &s);
    if (rc < 0 && why) *why = "signature does not verify";
    return rc >= 0;
}

}  // namespace ferry::verify::dkim
