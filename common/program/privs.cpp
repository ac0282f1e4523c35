// Dropping root: daemons switch to mail_user right after binding their listeners, before the loop.
#include "common/program/privs.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/types.h>
#include <unistd.h>

#include <vector>

#include "common/base/log.hpp"

namespace ferry {

Result<UserIds> lookup_user(const std::string& name) {
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buf(16384);
    int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
    if (rc != 0) return sys_error("cannot look up mail_user \"" + name + "\"", rc);
    if (!found) return make_error(0, "", "mail_user \"" + name + "\" does not exist");
    return UserIds{pw.pw_uid, pw.pw_gid};
}

namespace {

// After the switch: every uid and gid is the target's, and setuid(0) must fail.
Result<void> verify_dropped(const std::string& name, const UserIds& u) {
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0)
        return sys_error("cannot read process ids after switching to " + name);
    if (ruid != u.uid || euid != u.uid || suid != u.uid || rgid != u.gid || egid != u.gid || sgid != u.gid)
        return make_error(0, "", "process ids are not all " + name + "'s after switching");
    if (setuid(0) == 0 || seteuid(0) == 0) return make_error(0, "", "root could be regained after switching to " + name);
    return {};
}

}  // namespace

Result<void> drop_privileges(const std::string& mail_user) {
    if (mail_user.empty()) return {};
    auto user = lookup_user(mail_user);
    if (!user) return user.error();
    const UserIds& u = user.value();
    if (u.uid == 0) return make_error(0, "", "mail_user \"" + mail_user + "\" is root; name an unprivileged user");
    if (geteuid() == u.uid && getuid() == u.uid) return {};  // started as that user already
    if (geteuid() != 0)
        return make_error(0, "", "cannot switch to mail_user \"" + mail_user + "\": not running as root");
    if (initgroups(mail_user.c_str(), u.gid) != 0) return sys_error("initgroups for " + mail_user);
    if (setresgid(u.gid, u.gid, u.gid) != 0) return sys_error("setresgid to " + mail_user);
    if (setresuid(u.uid, u.uid, u.uid) != 0) return sys_error("setresuid to " + mail_user);
    if (auto r = verify_dropped(mail_user, u); !r) return r;
    log::info("running as %s (uid %u, gid %u)", mail_user.c_str(), static_cast<unsigned>(u.uid),
              static_cast<unsigned>(u.gid));
    return {};
}

}  // namespace ferry
