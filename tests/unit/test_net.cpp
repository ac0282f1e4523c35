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

TEST_CASE("address blocks: parsing and membership", "[net]") {
    auto n = net::parse_networks("127.0.0.0/8, 192.0.2.7 [::1] 2001:db8::/32");
    REQUIRE(n.ok());
    CHECK(n->size() == 4);
    CHECK(net::in_networks(*n, "127.0.0.1"));
    CHECK(net::in_networks(*n, "127.255.255.254"));
    CHECK_FALSE(net::in_networks(*n, "128.0.0.1"));
    CHECK(net::in_networks(*n, "192.0.2.7"));
    CHECK_FALSE(net::in_networks(*n, "192.0.2.8"));
    CHECK(net::in_networks(*n, "::1"));
    CHECK(net::in_networks(*n, "2001:db8:ffff::1"));
    CHECK_FALSE(net::in_networks(*n, "2001:db9::1"));
    CHECK(net::in_networks(*n, "::ffff:127.0.0.9"));  // IPv4-mapped counts as IPv4
    CHECK_FALSE(net::in_networks(*n, "not an address"));
    CHECK_FALSE(net::in_networks(*n, ""));

    auto edges = net::parse_networks("10.1.0.0/17 0.0.0.0/0");
    REQUIRE(edges.ok());
    CHECK(net::in_networks({edges->at(0)}, "10.1.127.255"));
    CHECK_FALSE(net::in_networks({edges->at(0)}, "10.1.128.0"));
    CHECK(net::in_networks({edges->at(1)}, "203.0.113.1"));
    CHECK_FALSE(net::in_networks({edges->at(1)}, "::2"));  // an IPv4 block never holds IPv6

    auto none = net::parse_networks("  ");
    REQUIRE(none.ok());
    CHECK(none->empty());
    for (const char* bad : {"10.0.0.0/33", "10.0.0.1/8", "10.0.0.0/", "10.0.0.0/x", "example.org", "::1/129", "1.2.3"})
        CHECK_FALSE(net::parse_networks(bad).ok());
}
