// What a program needs from the host, declared in one place: its directories, sockets, peers and user.
#include "common/program/declaration.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "common/base/fd.hpp"
#include "common/base/fs.hpp"
#include "common/base/log.hpp"
#include "common/program/privs.hpp"

namespace ferry {

namespace {

// The ids new directories and sockets are given: none unless root creates them for mail_user.
Result<std::optional<UserIds>> owner_ids(const Declaration& decl, const Config& config) {
    std::string user = config.str(decl.user);
    if (user.empty() || geteuid() != 0) return std::optional<UserIds>{};
    auto ids = lookup_user(user);
    if (!ids) return ids.error();
    return std::optional<UserIds>{ids.value()};
}

std::string parent_of(const std::string& path) {
    size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// Like `mkdir -p` for what lies above a declared directory: 0755 whatever the umask (mail_user must
// pass through), owned by whoever runs this.
Result<void> make_parents(const std::string& path) {
    for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
        std::string dir = path.substr(0, slash);
        if (mkdir(dir.c_str(), 0700) != 0) {
            if (errno == EEXIST) continue;
            return sys_error("cannot create directory " + dir);
        }
        Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd.valid() || fchmod(fd.get(), 0755) != 0) return sys_error("cannot set the mode of " + dir);
    }
    return {};
}

// Whether `path` is already there (then it is left alone); an error when it is something else.
Result<bool> directory_exists(const std::string& path, const DirectorySpec& spec) {
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) return true;
        return make_error(0, "", std::string(spec.key) + " " + path + " exists and is not a directory");
    }
    if (errno != ENOENT) return sys_error("cannot look at " + path);
    return false;
}

// Made 0700 first and widened through its descriptor, so it is never more open than declared.
Result<void> make_directory(const std::string& path, const DirectorySpec& spec, const std::optional<UserIds>& ids) {
    if (auto r = make_parents(path); !r) return r;
    if (mkdir(path.c_str(), 0700) != 0) {
        if (errno == EEXIST) return {};  // another daemon starting at the same time made it
        return sys_error("cannot create directory " + path);
    }
    Fd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return sys_error("cannot open the new directory " + path);
    if (ids && fchown(fd.get(), spec.owner == Owner::root ? 0 : ids->uid, ids->gid) != 0)
        return sys_error("cannot give " + path + " to its owner");
    if (fchmod(fd.get(), spec.mode) != 0) return sys_error("cannot set the mode of " + path);
    if (auto r = fsync_dir(parent_of(path)); !r) return r;
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return sys_error("cannot stat the new directory " + path);
    log::info("created %s (uid %u, gid %u, mode %04o)", path.c_str(), static_cast<unsigned>(st.st_uid),
              static_cast<unsigned>(st.st_gid), static_cast<unsigned>(st.st_mode & 07777));
    return {};
}

// Bound as root: the socket must belong to mail_user, or peers that dropped privileges cannot connect.
Result<void> hand_over_socket(const std::string& path, const SocketSpec& spec, const std::optional<UserIds>& ids) {
    // NOFOLLOW: whatever the socket's directory holds, a symlink planted there changes nothing else.
    if (ids && fchownat(AT_FDCWD, path.c_str(), ids->uid, ids->gid, AT_SYMLINK_NOFOLLOW) != 0)
        return sys_error("cannot give " + std::string(spec.key) + " " + path + " to mail_user");
    if (fchmodat(AT_FDCWD, path.c_str(), spec.mode, AT_SYMLINK_NOFOLLOW) != 0)
        return sys_error("cannot set the mode of " + std::string(spec.key) + " " + path);
    return {};
}

std::string running_user(const Declaration& decl, const Config& config) {
    std::string user = config.str(decl.user);
    return user.empty() ? "the invoking user" : user;
}

// "owner 0:998, mode 0750", for an error message.
std::string describe(const std::string& path) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return std::string("cannot stat: ") + std::strerror(errno);
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return "owner " + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) + ", mode " + mode;
}

// After the switch: a directory the program cannot use would fail every message later, so say it now.
Result<void> check_directories(const Declaration& decl, const Config& config) {
    for (const auto& spec : decl.directories) {
        std::string path = directory_path(spec, config);
        if (path.empty()) continue;
        int need = spec.owner == Owner::mail_user ? R_OK | W_OK | X_OK : X_OK;
        if (access(path.c_str(), need) == 0) continue;
        int err = errno;
        return make_error(0, "", std::string(spec.key) + " " + path + ": " + running_user(decl, config) + " cannot " +
                                     (need == X_OK ? "enter" : "write to") + " it (" + describe(path) + "); " +
                                     (need == X_OK ? "let mail_user's group in (mode 0750)" : "give it to mail_user") +
                                     ", or remove it so that ferry creates it",
                          std::strerror(err));
    }
    return {};
}

// A peer that has not started yet is fine; one whose socket refuses us is a setup error worth a line.
void check_peers(const Declaration& decl, const Config& config) {
    for (auto key : decl.peers) {
        std::string path = config.str(key);
        if (path.empty() || access(path.c_str(), W_OK) == 0 || errno == ENOENT) continue;
        log::warn("%.*s %s: %s cannot connect to it", static_cast<int>(key.size()), key.data(), path.c_str(),
                  running_user(decl, config).c_str());
    }
}

}  // namespace

std::string directory_path(const DirectorySpec& dir, const Config& config) {
    std::string path = config.str(dir.key);
    while (path.size() > 1 && path.back() == '/') path.pop_back();  // "/var/spool/ferry/" names the same
    if (path.empty()) return path;
    if (dir.parent_of_file) return parent_of(path);
    return dir.sub.empty() ? path : path + "/" + std::string(dir.sub);
}

// Regular files with one link only (never a symlink, never a hard link to a file elsewhere), and the
// directory itself: what a root run left behind must not lock mail_user out of its own state.
Result<void> adopt_directory(const std::string& path, const UserIds& ids) {
    Fd dir(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir.valid()) return sys_error("cannot open " + path);
    struct stat st;
    if (fstat(dir.get(), &st) != 0) return sys_error("cannot stat " + path);
    if ((st.st_uid != ids.uid || st.st_gid != ids.gid) && fchown(dir.get(), ids.uid, ids.gid) != 0)
        return sys_error("cannot give " + path + " to mail_user");
    int listing = dup(dir.get());
    DIR* d = listing >= 0 ? fdopendir(listing) : nullptr;
    if (!d) {
        if (listing >= 0) close(listing);
        return sys_error("cannot list " + path);
    }
    std::unique_ptr<DIR, int (*)(DIR*)> closer(d, closedir);
    size_t adopted = 0;
    while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || (st.st_uid == ids.uid && st.st_gid == ids.gid)) continue;
        if (fchownat(dir.get(), name.c_str(), ids.uid, ids.gid, AT_SYMLINK_NOFOLLOW) != 0)
            return sys_error("cannot give " + path + "/" + name + " to mail_user");
        ++adopted;
    }
    if (adopted) log::info("%s: %zu files of another user given to mail_user", path.c_str(), adopted);
    return {};
}

Result<void> create_directories(const Declaration& decl, const Config& config) {
    std::optional<Result<std::optional<UserIds>>> ids;  // looked up when the first directory is missing or adopted
    for (const auto& spec : decl.directories) {
        std::string path = directory_path(spec, config);
        if (path.empty()) continue;
        auto exists = directory_exists(path, spec);
        if (!exists) return exists.error();
        if (*exists && !spec.adopt) continue;
        if (!ids) ids = owner_ids(decl, config);
        if (!*ids) return ids->error();
        if (!*exists) {
            if (auto r = make_directory(path, spec, ids->value()); !r) return r;
        } else if (spec.adopt && ids->value() && spec.owner == Owner::mail_user) {
            if (auto r = adopt_directory(path, *ids->value()); !r) return r;
        }
    }
    return {};
}

Result<void> drop_privileges(const Declaration& decl, const Config& config) {
    auto ids = owner_ids(decl, config);
    if (!ids) return ids.error();
    for (const auto& spec : decl.sockets)
        if (auto r = hand_over_socket(config.str(spec.key), spec, *ids); !r) return r;
    if (auto r = drop_privileges(config.str(decl.user)); !r) return r;
    if (auto r = check_directories(decl, config); !r) return r;
    check_peers(decl, config);
    return {};
}

}  // namespace ferry
