// Unit tests of what start-up makes of a declaration: paths, missing directories, modes, and refusals.
#include <sys/stat.h>

#include <catch.hpp>

#include "common/program/declaration.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;

namespace {

Config config_for(const std::string& root) {
    auto c = Config::parse("spool_dir = " + root + "/var/spool\nmail_dir = " + root + "/mail\nrun_dir = " + root +
                               "/run\naccount_db = " + root + "/db/accounts.db\n",
                           "t.conf", "qmgr");
    REQUIRE(c.ok());
    return std::move(c.value());
}

mode_t mode_of(const std::string& path) {
    struct stat st;
    REQUIRE(lstat(path.c_str(), &st) == 0);
    REQUIRE(S_ISDIR(st.st_mode));
    return st.st_mode & 07777;
}

const Declaration kDecl{
    .user = "mail_user",
    .directories = {
        {.key = "spool_dir", .owner = Owner::mail_user, .mode = 0750},
        {.key = "spool_dir", .sub = "queue", .owner = Owner::mail_user, .mode = 0750},
        {.key = "mail_dir", .owner = Owner::mail_user, .mode = 0700},
        {.key = "qmgr_socket", .parent_of_file = true, .owner = Owner::root, .mode = 0755},
        {.key = "account_db", .parent_of_file = true, .owner = Owner::root, .mode = 0750},
    },
    .sockets = {},
    .peers = {},
};

}  // namespace

TEST_CASE("declaration: a directory is the key's value, a subdirectory of it, or the parent of a file") {
    Config c = config_for("/x");
    CHECK(directory_path(kDecl.directories[0], c) == "/x/var/spool");
    CHECK(directory_path(kDecl.directories[1], c) == "/x/var/spool/queue");
    CHECK(directory_path(kDecl.directories[3], c) == "/x/run");
    CHECK(directory_path(kDecl.directories[4], c) == "/x/db");
    REQUIRE(c.set("spool_dir", "/x/spool//").ok());
    CHECK(directory_path(kDecl.directories[1], c) == "/x/spool/queue");
}

TEST_CASE("declaration: missing directories get the declared mode whatever the umask, parents 0755") {
    test::TempDir dir;
    mode_t old = umask(077);
    auto r = create_directories(kDecl, config_for(dir.path));
    umask(old);
    REQUIRE(r.ok());
    CHECK(mode_of(dir.path + "/var") == 0755);  // a missing parent
    CHECK(mode_of(dir.path + "/var/spool") == 0750);
    CHECK(mode_of(dir.path + "/var/spool/queue") == 0750);
    CHECK(mode_of(dir.path + "/mail") == 0700);
    CHECK(mode_of(dir.path + "/run") == 0755);
    CHECK(mode_of(dir.path + "/db") == 0750);
}

TEST_CASE("declaration: an existing directory is left as it is") {
    test::TempDir dir;
    REQUIRE(mkdir((dir.path + "/mail").c_str(), 0711) == 0);
    REQUIRE(chmod((dir.path + "/mail").c_str(), 0711) == 0);
    REQUIRE(create_directories(kDecl, config_for(dir.path)).ok());
    CHECK(mode_of(dir.path + "/mail") == 0711);
}

TEST_CASE("declaration: a file where a directory belongs is an error naming the key") {
    test::TempDir dir;
    test::write_text(dir.path + "/mail", "not a directory");
    auto r = create_directories(kDecl, config_for(dir.path));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().what() == "mail_dir " + dir.path + "/mail exists and is not a directory");
}
