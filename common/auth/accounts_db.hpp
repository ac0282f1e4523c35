// The account database file: record format and the rebuild-then-rename writer (used by ferry-admin).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/auth/accounts.hpp"
#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry::accountdb {

// A Berkeley DB btree of text keys and values (see ferry-admin(8), DATABASE FORMAT):
//   "m:format"            "ferry-accounts 1"
//   "d:<domain>"          "1"
//   "a:<local@domain>"    "1\t<crypt hash>\t<quota bytes>\t<quota messages>[\t<SCRAM keys>]"
//   "l:<local@domain>"    "1\t<target>[\t<target>]..."  (alias)
//   "l:@<domain>"         same, the domain's catch-all
// Every value starts with its record version; a reader refuses versions it does not know.
inline constexpr const char* kFormatKey = "m:format";
inline constexpr const char* kFormatValue = "ferry-accounts 1";

std::string domain_key(std::string_view domain);
std::string account_key(std::string_view address);
std::string alias_key(std::string_view address_or_at_domain);

std::string encode_account(const Account& a);
Result<Account> decode_account(std::string_view address, std::string_view value);
std::string encode_targets(const std::vector<std::string>& targets);
Result<std::vector<std::string>> decode_targets(std::string_view value);

// A whole table in memory, key -> value, sorted as the btree is.
using Records = std::map<std::string, std::string, std::less<>>;

// Reads every record of the file; a missing file is an empty table.
Result<Records> read_records(const std::string& path);

// The writers' lock: an flock on "<path>.lock", which the kernel releases when its holder dies,
// so a SIGKILLed writer never blocks the next one. Readers never take it.
class WriterLock {
public:
    // Waits up to `wait` for a running writer to finish; an error (exit 75 in ferry-admin) after that.
    static Result<WriterLock> acquire(const std::string& db_path, std::chrono::milliseconds wait);

private:
    Fd fd_;
};

// Removes "<path>.tmp.*" files left by killed writers; call only while holding the WriterLock.
Result<void> remove_stale_temp_files(const std::string& db_path);

// Writes `records` into a new "<path>.tmp.<pid>", syncs and closes it, fsyncs it, renames it over
// `path` and fsyncs the directory. Readers see the old file or the new one, never a mix.
// `halfway` runs after half of the records are written (the crash-test pause point).
// A new database is mode 0640 and, when `reader_user` names a user (mail_user), belongs to that
// user's group, so daemons that dropped privileges can read it; a rebuilt one keeps mode and owner.
Result<void> rebuild(const std::string& path, const Records& records, const std::function<void()>& halfway = {},
                     const std::string& reader_user = {});

}  // namespace ferry::accountdb
