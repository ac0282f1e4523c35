// The folders of one account (Maildir++): names, list, create, delete, rename, subscriptions, SPECIAL-USE.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"

namespace ferry::store {

// Clients see '/' between levels; on disk a folder "A/B" is the directory "<root>/.A.B" beside
// INBOX's new/ cur/ tmp/ (Maildir++, as Dovecot's and Courier's LAYOUT=maildir++). Names are UTF-8
// on disk (Dovecot reads them with the ":UTF-8" option of mail_location); ferry-imapd converts
// to and from modified UTF-7 on the wire.
inline constexpr char kDelimiter = '/';
inline constexpr const char* kSubscriptionsFile = "subscriptions";      // one name per line, '/' between levels
inline constexpr const char* kSpecialUseFile = "ferry-special-use";     // "<attribute>\t<name>" per line
inline constexpr const char* kFoldersLockFile = "ferry-folders.lock";
inline constexpr const char* kUidvalidityFile = "ferry-uidvalidity";    // the highest UIDVALIDITY of a folder deleted or renamed away
inline constexpr const char* kMaildirFolderFile = "maildirfolder";      // Maildir++ marks a folder with it
inline constexpr size_t kMaxFolderName = 200;                          // bytes; the directory name stays under NAME_MAX

struct DefaultFolder {
    const char* name;
    const char* special_use;  // RFC 6154
};
inline constexpr DefaultFolder kDefaultFolders[] = {
    {"Drafts", "\\Drafts"}, {"Sent", "\\Sent"}, {"Trash", "\\Trash"}, {"Junk", "\\Junk"}, {"Archive", "\\Archive"}};

// "INBOX" in any case.
bool is_inbox(std::string_view name);

// Valid UTF-8 without control characters, levels separated by single '/', no empty level, no '.'
// in a level (the on-disk separator), at most kMaxFolderName bytes.
Result<void> check_folder_name(std::string_view name);

// The Maildir of a folder: `root` for INBOX, "<root>/.A.B" for "A/B".
Result<std::string> folder_path(const std::string& root, std::string_view name);

struct Folder {
    std::string name;         // with '/' between levels; "INBOX" for the root
    std::string special_use;  // "\Sent" ..., empty for none
    bool subscribed = false;
};

// INBOX first, then every folder directory by name. Directories that are no valid folder name
// (another program's) are left out.
Result<std::vector<Folder>> list_folders(const std::string& root);

// The folder that carries the SPECIAL-USE `attribute` ("\Junk", any case), or "" when none does.
std::string special_use_folder(const std::string& root, std::string_view attribute);

// Errors: bad name, INBOX, or a folder of that name exists already.
Result<void> create_folder(const std::string& root, std::string_view name, std::string_view special_use = {});
// Removes the folder's directory and its messages (its children stay, RFC 3501 section 6.3.4).
// INBOX cannot be deleted.
Result<void> delete_folder(const std::string& root, std::string_view name);
// Renames a folder and its children; its index (UIDVALIDITY and UIDs) goes with it. Renaming INBOX
// moves its messages into a new folder `to` and leaves INBOX empty (RFC 3501 section 6.3.5).
Result<void> rename_folder(const std::string& root, std::string_view from, std::string_view to);

Result<std::vector<std::string>> subscriptions(const std::string& root);
// Adds or removes a name (that need not exist, RFC 3501 section 6.3.6).
Result<void> subscribe(const std::string& root, std::string_view name, bool on);

// Creates the account's Maildir when missing, and the first time the store sees it the default
// folders with their SPECIAL-USE attributes, subscribed. ferry-mda and ferry-imapd call it before
// they first use an account; later calls only check.
Result<void> ensure_account(const std::string& root);

}  // namespace ferry::store
