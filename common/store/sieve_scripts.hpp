// An account's Sieve scripts on disk: ManageSieve writes them, ferry-mda reads the active one.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"

namespace ferry::store {

// Layout (ferry-mailstore(5)), beside the account's Maildir folders, never a Maildir++ folder:
//   <maildir>/sieve/<name>.sieve   one file per script, written durably (temp, fsync, rename, fsync dir)
//   <maildir>/sieve/active         a symlink to the active script's file name; absent: none active
// Replacing the symlink is one rename, so a reader sees the old or the new active script, never none.
class SieveScripts {
public:
    struct Entry {
        std::string name;
        bool active = false;
    };
    struct Active {
        std::string name;
        std::string text;
    };

    explicit SieveScripts(std::string maildir);

    // A name ManageSieve accepts (RFC 5804 1.6): 1 to 128 octets of UTF-8, no control characters,
    // no '/', not starting with '.'.
    static bool valid_name(std::string_view name);

    // Every script, sorted by name; empty when the account has none (no sieve/ directory yet).
    Result<std::vector<Entry>> list() const;
    // A script's text; an empty optional when there is no such script.
    Result<std::optional<std::string>> get(std::string_view name) const;
    // Creates or replaces a script, durably.
    Result<void> put(std::string_view name, std::string_view text);
    // Removes a script; an error (ACTIVE) when it is the active one, (NONEXISTENT) when missing.
    Result<void> remove(std::string_view name);
    // Renames a script, keeping it active when it was; errors when `from` is missing or `to` exists.
    Result<void> rename(std::string_view from, std::string_view to);
    // Makes `name` the active script; "" deactivates. An error when `name` does not exist.
    Result<void> set_active(std::string_view name);
    // The active script's name and text; an empty optional when none is active (or its file vanished).
    Result<std::optional<Active>> active() const;
    // The size of all scripts together, for a quota.
    Result<uint64_t> total_size() const;

    const std::string& dir() const { return dir_; }

private:
    std::string path_of(std::string_view name) const;
    Result<std::optional<std::string>> active_name() const;
    std::string dir_;
};

}  // namespace ferry::store
