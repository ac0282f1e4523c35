// Dropping root: daemons switch to mail_user right after binding their listeners, before the loop.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/program/config.hpp"
#include "common/base/result.hpp"

namespace ferry {

struct UserIds {
    uid_t uid;
    gid_t gid;  // the user's primary group
};

// The ids of `name` from the password database; an error when it does not exist.
Result<UserIds> lookup_user(const std::string& name);

// Empty `mail_user`: stay as the invoking user (development and tests). Otherwise, when running
// as root: initgroups, setresgid, setresuid to that user, then verify that root cannot be regained.
// Already running as that user: nothing to do. Running as another non-root user, an unknown user,
// or mail_user naming uid 0: an error (the daemon should exit 75).
// Call after binding listeners, loading TLS keys and opening root-only files, and before starting
// worker threads (Authenticator) and the event loop. Daemons call the overload of declaration.hpp,
// which also hands their sockets to mail_user.
Result<void> drop_privileges(const std::string& mail_user);
inline Result<void> drop_privileges(const Config& config) { return drop_privileges(config.str("mail_user")); }

}  // namespace ferry
