// What a program needs from the host, declared in one place: its directories, sockets, peers and user.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/program/config.hpp"

namespace ferry {

// Who owns a directory or socket that ferry creates as root with the declared user (mail_user) set.
// The group is always that user's primary group: a root-owned directory lets the daemons in through it.
enum class Owner { root, mail_user };

// A directory named by a config key: the key's value, a subdirectory `sub` of it, or (parent_of_file)
// the directory holding the file or socket that the key names.
struct DirectorySpec {
    std::string_view key;
    std::string_view sub = "";
    bool parent_of_file = false;
    Owner owner = Owner::mail_user;
    mode_t mode = 0750;
    // It holds only the program's own small files: when it or a file in it belongs to another user (a
    // run without mail_user, or with another one), start-up as root gives them back to mail_user.
    bool adopt = false;
};

// A Unix socket the program binds: it then belongs to mail_user with `mode`, so that peers running as
// mail_user can connect.
struct SocketSpec {
    std::string_view key;
    mode_t mode = 0660;
};

struct Declaration {
    std::string_view user;                   // the config key naming the user it runs as: "mail_user"
    std::vector<DirectorySpec> directories;  // created in this order when missing
    std::vector<SocketSpec> sockets;         // bound by the program between the two calls below
    std::vector<std::string_view> peers;     // socket keys of the programs it connects to
};

// The path a DirectorySpec names in `config` ("" when its key is empty).
std::string directory_path(const DirectorySpec& dir, const Config& config);

// Before binding: creates each declared directory that is missing, with the declared mode (and
// missing parents with 0755). As root with mail_user set, a new directory gets the declared owner
// and mail_user's group; otherwise it belongs to the invoking user. Existing ones are left alone.
Result<void> create_directories(const Declaration& decl, const Config& config);

// After binding, before worker threads and the event loop: gives each declared socket to mail_user
// with its mode, drops privileges (privs.hpp), then checks that the program can use its directories
// (an error otherwise) and warns about a peer socket it could not connect to.
Result<void> drop_privileges(const Declaration& decl, const Config& config);

}  // namespace ferry
