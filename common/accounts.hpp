// The account database: domains, accounts, aliases and quotas, behind one small lookup interface.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace ferry {

struct Account {
    std::string address;        // local@domain, lower-case
    std::string password_hash;  // crypt(3): $y$ (yescrypt) or $6$ (SHA-512-crypt)
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
};

// Berkeley DB implementation (see accounts_db.cpp): read-only opens without an environment,
// reopened when ferry-admin renames a rebuilt file into place.
std::unique_ptr<AccountStore> open_account_db(const std::string& path);

// "Local@Example.TEST" -> "local@example.test"; local parts are compared case-insensitively.
std::string normalize_address(std::string_view address);
std::string domain_of(std::string_view address);
std::string local_part_of(std::string_view address);

// crypt(3) helpers. hash_password uses yescrypt; verify_password accepts any crypt(3) hash libxcrypt knows.
Result<std::string> hash_password(std::string_view password);
bool verify_password(std::string_view password, const std::string& hash);

}  // namespace ferry
