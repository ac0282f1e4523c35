// Unix-socket connect: the one helper every client of a ferry socket uses.
#include <catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>

#include <string>

#include "common/event/net.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;

TEST_CASE("connect_unix reaches a listener in the mode asked for", "[net]") {
    test::TempDir dir;
    std::string path = dir.path + "/s.sock";
    auto listener = net::listen_unix(path);
    REQUIRE(listener.ok());

    auto blocking = net::connect_unix(path);
    REQUIRE(blocking.ok());
    CHECK((fcntl(blocking.value().get(), F_GETFL) & O_NONBLOCK) == 0);
    CHECK((fcntl(blocking.value().get(), F_GETFD) & FD_CLOEXEC) != 0);

    auto nonblocking = net::connect_unix(path, net::Blocking::no);
    REQUIRE(nonblocking.ok());
    CHECK((fcntl(nonblocking.value().get(), F_GETFL) & O_NONBLOCK) != 0);
}

TEST_CASE("connect_unix reports a missing socket and a path too long", "[net]") {
    test::TempDir dir;
    auto missing = net::connect_unix(dir.path + "/none.sock", net::Blocking::no);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().what().find("none.sock") != std::string::npos);

    auto long_path = net::connect_unix(dir.path + "/" + std::string(120, 'x'));
    REQUIRE_FALSE(long_path.ok());
    CHECK(long_path.error().what().find("too long") != std::string::npos);
}
