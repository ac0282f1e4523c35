// Password hashing with libxcrypt: yescrypt for new hashes, any crypt(3) method libxcrypt knows for checks.
#include <crypt.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "common/auth/accounts.hpp"

namespace ferry {

namespace {

// struct crypt_data is ~32 KiB: too big for a worker thread's stack, and it must start zeroed.
std::unique_ptr<crypt_data> new_crypt_data() {
    auto d = std::make_unique<crypt_data>();
    std::memset(d.get(), 0, sizeof *d);
    return d;
}

// crypt(3) takes C strings: a password with a NUL byte in it cannot be hashed faithfully.
bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// Compares every byte whatever the first difference, so timing tells nothing about the hash.
bool equal_constant_time(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

}  // namespace

Result<std::string> hash_password(std::string_view password) {
    if (password.empty()) return make_error(0, "", "empty password");
    if (has_nul(password)) return make_error(0, "", "password contains a NUL byte");
    // count 0 = libxcrypt's default cost; nullptr random bytes = read from the kernel.
    std::unique_ptr<char, decltype(&free)> salt(crypt_gensalt_ra("$y$", 0, nullptr, 0), free);
    if (!salt) return sys_error("cannot make a yescrypt salt");
    auto data = new_crypt_data();
    std::string pw(password);
    const char* out = crypt_r(pw.c_str(), salt.get(), data.get());
    std::memset(pw.data(), 0, pw.size());
    if (!out || out[0] == '*') return sys_error("crypt_r failed");
    return std::string(out);
}

bool verify_password(std::string_view password, const std::string& hash) {
    // "!" and "*" prefixes lock an account in /etc/shadow; an empty hash must never match.
    if (hash.empty() || hash[0] == '!' || hash[0] == '*' || has_nul(password)) return false;
    auto data = new_crypt_data();
    std::string pw(password);
    const char* out = crypt_r(pw.c_str(), hash.c_str(), data.get());
    std::memset(pw.data(), 0, pw.size());
    if (!out || out[0] == '*') return false;  // libxcrypt's failure token
    return equal_constant_time(out, hash);
}

bool valid_password_hash(std::string_view hash) {
    if (hash.empty() || has_nul(hash)) return false;
    for (char c : hash)
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ':') return false;
    std::string h(hash);
    int check = crypt_checksalt(h.c_str());
    if (check == CRYPT_SALT_INVALID || check == CRYPT_SALT_METHOD_DISABLED) return false;
    // crypt_checksalt looks at the setting only ("plain" passes as a DES salt): a whole hash re-hashes
    // to a string of its own length.
    auto data = new_crypt_data();
    const char* out = crypt_r("probe", h.c_str(), data.get());
    return out && out[0] != '*' && std::strlen(out) == h.size();
}

}  // namespace ferry
