// The account database: domains, accounts, aliases and quotas, behind one small lookup interface.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/mail/address.hpp"

namespace ferry {

struct Account {
    std::string address;        // local@domain, lower-case
    std::string password_hash;  // crypt(3): $y$ (yescrypt) or $6$ (SHA-512-crypt)
    std::string scram;          // sasl::scram_encode() of the SCRAM-SHA-256 keys; empty when not derived
    uint64_t quota_bytes = 0;   // 0 = unlimited
    uint64_t quota_messages = 0;
};

// Read side, used by every daemon. Implementations pick up a writer's changes by themselves.
class AccountStore {
public:
    virtual ~AccountStore() = default;
    virtual Result<bool> has_domain(std::string_view domain) = 0;
    virtual Result<std::optional<Account>> account(std::string_view address) = 0;
    // Targets of an alias: the exact address, or else the domain's catch-all "@domain"; empty when none.
    virtual Result<std::vector<std::string>> alias(std::string_view address) = 0;
    // Targets of the exact entry only (no catch-all fallback); "@domain" names the catch-all itself.
    // The default derives it from alias(); the Berkeley DB store answers it directly.
    virtual Result<std::vector<std::string>> exact_alias(std::string_view address);

    // recipient_delimiter (RFC 5233 subaddresses): the characters that end the base of a local
    // part, each one a delimiter; empty: off. account() and alias() stay exact lookups; the
    // recipient rules (recipient_account, aliases::store_lookup) fall back to the base address.
    void set_recipient_delimiter(std::string delimiters) { delimiters_ = std::move(delimiters); }
    const std::string& recipient_delimiter() const { return delimiters_; }

private:
    std::string delimiters_;
};

// The account mail for `address` (normalized) goes into: the account of that exact address, else
// the account of its base address (subaddress_base with the store's recipient_delimiter), so
// "user+tag@d" goes into "user@d" while an account "a+b@d" keeps its own mail.
Result<std::optional<Account>> recipient_account(AccountStore& store, std::string_view address);

class Config;

// Berkeley DB implementation (see accounts_db.cpp): read-only opens without an environment,
// reopened when ferry-admin renames a rebuilt file into place.
// Never returns null: a missing file reads as "no domains" (with a logged warning), an unreadable one
// as a lookup error (451 4.3.0). Before a lookup, at most every check_interval, the path is stat()ed
// and the file reopened when its inode, size or mtime changed. The one-argument form checks every time.
std::unique_ptr<AccountStore> open_account_db(const std::string& path);
std::unique_ptr<AccountStore> open_account_db(const std::string& path, std::chrono::milliseconds check_interval);
// Uses the keys account_db, account_db_check_interval and recipient_delimiter.
std::unique_ptr<AccountStore> open_account_db(const Config& config);

// crypt(3) helpers. hash_password uses yescrypt; verify_password accepts any crypt(3) hash libxcrypt knows.
Result<std::string> hash_password(std::string_view password);
bool verify_password(std::string_view password, const std::string& hash);
// Whether an imported hash has a form libxcrypt accepts (no spaces, colons or control characters).
bool valid_password_hash(std::string_view hash);

}  // namespace ferry
