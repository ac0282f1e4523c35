// ferry-admin's pieces: command context, exit statuses, table edits and the write transaction.
#pragma once

#include <sysexits.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/auth/accounts.hpp"
#include "common/auth/accounts_db.hpp"
#include "common/program/config.hpp"
#include "common/base/result.hpp"
#include "common/mail/address.hpp"

namespace ferry::admin {

// Exit statuses (ferry-admin(8), EXIT STATUS).
inline constexpr int kExitOk = EX_OK;
inline constexpr int kExitUser = 1;             // bad command, address, duplicate, unknown domain, ...
inline constexpr int kExitTemp = EX_TEMPFAIL;   // lock held too long, I/O or database trouble
inline constexpr int kExitConfig = EX_CONFIG;   // ferry.conf unreadable or invalid

struct Context {
    Config config = Config::defaults("admin");
    std::chrono::milliseconds lock_wait{10000};
};

// The words after `<object> <verb>`: positional arguments and the few --flags commands take.
struct Args {
    std::vector<std::string> words;
    bool force = false;
    bool only_set = false;                // config -n
    std::optional<std::string> hash;      // account add|passwd --hash
    bool utf8 = false;                    // --utf8: new addresses and domains may use RFC 6531 UTF-8
    bool help = false;                    // --help after a command: its own usage, exit 0
    std::vector<std::string> addresses;   // dns --address IP (repeatable)
    std::optional<std::string> output;    // autoconfig --output DIR
    std::optional<std::string> format;    // autoconfig --format thunderbird|apple|outlook
    std::optional<std::string> resolver;  // check --resolver IP[:PORT]
    std::optional<std::string> via;       // check --via HOST:PORT (where the probe goes in)
    std::optional<std::string> probe;     // check --probe ADDRESS (the probe's recipient)
    std::optional<std::string> probe_wait;  // check --probe-wait SECONDS
    std::optional<std::string> probe_path;  // check --probe-path in|out|both
    bool no_probe = false;                // check --no-probe
    bool ed25519 = false;                 // dkim generate --ed25519
    AddressForm form() const { return utf8 ? AddressForm::utf8 : AddressForm::ascii; }
};

// Prints "ferry-admin: <message>" on stderr and returns `status`.
int fail(int status, const std::string& message);

using Records = accountdb::Records;

// Edits of the table in memory (table.cpp). Errors are the user's (exit 1), with the text to print.
// What is added is checked in `form`; what names an existing record is taken in either form.
Result<void> add_domain(Records& r, const std::string& domain, AddressForm form = AddressForm::ascii);
Result<void> remove_domain(Records& r, const std::string& domain, bool force);
std::vector<std::string> list_domains(const Records& r);
Result<void> add_account(Records& r, const std::string& address, const std::string& hash,
                         AddressForm form = AddressForm::ascii);
Result<void> remove_account(Records& r, const std::string& address);
Result<void> set_password(Records& r, const std::string& address, const std::string& hash);
Result<void> set_quota(Records& r, const std::string& address, uint64_t bytes, uint64_t messages);
std::vector<Account> list_accounts(const Records& r, const std::string& domain);
Result<void> add_alias(Records& r, const std::string& source, const std::vector<std::string>& targets,
                       AddressForm form = AddressForm::ascii);
Result<void> remove_alias(Records& r, const std::string& source, const std::vector<std::string>& targets);
std::vector<std::pair<std::string, std::vector<std::string>>> list_aliases(const Records& r, const std::string& domain);

// Checks an address for a new record: syntax in `form`, then that its domain is hosted.
Result<std::string> hosted_address(const Records& r, const std::string& address, AddressForm form = AddressForm::ascii);

// The write transaction (update.cpp): lock, clean up after killed writers, read, edit, rebuild, rename.
// Returns the exit status, having printed any error.
int update(const Context& ctx, const std::function<Result<void>(Records&)>& edit);
// A consistent snapshot for the list commands; prints the error and returns nullopt on failure.
std::optional<Records> snapshot(const Context& ctx);

// A password: from the terminal without echo (asked twice when `confirm`), else stdin's first line.
Result<std::string> read_password(bool confirm = true);
// An imported crypt(3) hash, with Dovecot's "{CRYPT}"-style scheme prefix removed.
Result<std::string> imported_hash(const std::string& text);

// Command handlers, one per object (cmd_*.cpp).
int domain_command(const Context& ctx, const std::string& verb, const Args& args);
int account_command(const Context& ctx, const std::string& verb, const Args& args);
int quota_command(const Context& ctx, const std::string& verb, const Args& args);
int alias_command(const Context& ctx, const std::string& verb, const Args& args);
int lookup_command(const Context& ctx, const Args& args);
int queue_command(const Context& ctx, const std::string& verb, const Args& args);
int dns_command(const Context& ctx, const Args& args);         // cmd_dns.cpp
int autoconfig_command(const Context& ctx, const Args& args);  // cmd_dns.cpp
int check_command(const Context& ctx, const Args& args);       // cmd_check.cpp
int dkim_command(const Context& ctx, const std::string& verb, const Args& args);  // cmd_dkim.cpp

}  // namespace ferry::admin
