// Sockets: TCP and Unix listeners, Unix clients, and address formatting.
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry::net {

// "127.0.0.1:2525", "[::1]:25", "*:25"; port 0 asks the kernel for a free port.
Result<Fd> listen_tcp(const std::string& host_port, int backlog = 128);
// Binds a stream socket at `path` (removing a stale one) with the given mode.
Result<Fd> listen_unix(const std::string& path, mode_t mode = 0660, int backlog = 128);
enum class Blocking { yes, no };
// Connects to a Unix stream socket; the fd stays in the given mode. A non-blocking connect on a
// Unix socket completes at once or fails (EAGAIN when the listener's backlog is full), so an
// event loop may call it without stalling.
Result<Fd> connect_unix(const std::string& path, Blocking mode = Blocking::yes);

// "127.0.0.1:2525" for a bound socket, "" on error.
std::string local_address(int fd);
std::string peer_address(int fd, bool* loopback = nullptr);  // host only, "127.0.0.1"; and whether it is loopback
std::string format_address(const sockaddr* sa, bool with_port);
bool is_loopback(const sockaddr* sa);

Result<void> set_nonblocking(int fd);

// An address block: "192.0.2.0/24", "2001:db8::/32", or one address ("127.0.0.1" is a /32).
struct Network {
    int family = 0;              // AF_INET or AF_INET6
    unsigned char bytes[16] = {};
    int prefix = 0;
};
// A list of blocks separated by commas or spaces; bits beyond the prefix must be zero.
Result<std::vector<Network>> parse_networks(std::string_view text);
// Whether the numeric `address` lies in one of `networks`; an IPv4-mapped IPv6 address counts as IPv4.
bool in_networks(const std::vector<Network>& networks, const std::string& address);

}  // namespace ferry::net
