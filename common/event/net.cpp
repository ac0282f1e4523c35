// Sockets: TCP and Unix listeners, Unix clients, and address formatting.
#include "common/event/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace ferry::net {

namespace {

// The address of a Unix socket; a path that does not fit sun_path is an error, never truncated.
Result<sockaddr_un> unix_address(const std::string& path) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (path.size() >= sizeof sun.sun_path)
        return make_error(0, "", "socket path too long: " + path, "at most 107 bytes");
    std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
    return sun;
}

}  // namespace

Result<Fd> listen_tcp(const std::string& host_port, int backlog) {
    std::string host, port;
    if (!host_port.empty() && host_port.front() == '[') {
        size_t close = host_port.find(']');
        if (close == std::string::npos || close + 1 >= host_port.size() || host_port[close + 1] != ':')
            return make_error(0, "", "bad listen address \"" + host_port + "\"", "expected [addr]:port");
        host = host_port.substr(1, close - 1);
        port = host_port.substr(close + 2);
    } else {
        size_t colon = host_port.rfind(':');
        if (colon == std::string::npos)
            return make_error(0, "", "bad listen address \"" + host_port + "\"", "expected host:port");
        host = host_port.substr(0, colon);
        port = host_port.substr(colon + 1);
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const char* node = (host.empty() || host == "*") ? nullptr : host.c_str();
    if (int rc = getaddrinfo(node, port.c_str(), &hints, &res); rc != 0)
        return make_error(0, "", "bad listen address \"" + host_port + "\"", gai_strerror(rc));
    Fd fd(socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) {
        freeaddrinfo(res);
        return sys_error("socket for " + host_port);
    }
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd.get(), res->ai_addr, res->ai_addrlen);
    int err = errno;
    freeaddrinfo(res);
    if (rc != 0) return sys_error("cannot listen on " + host_port, err);
    if (::listen(fd.get(), backlog) != 0) return sys_error("listen on " + host_port);
    return fd;
}

Result<Fd> listen_unix(const std::string& path, mode_t mode, int backlog) {
    auto sun = unix_address(path);
    if (!sun) return sun.error();
    Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return sys_error("socket for " + path);
    ::unlink(path.c_str());  // a stale socket from a killed predecessor
    mode_t old = umask(0777 & ~mode);
    int rc = bind(fd.get(), reinterpret_cast<const sockaddr*>(&sun.value()), sizeof(sockaddr_un));
    int err = errno;
    umask(old);
    if (rc != 0) return sys_error("cannot bind " + path, err);
    if (::listen(fd.get(), backlog) != 0) return sys_error("listen on " + path);
    return fd;
}

Result<Fd> connect_unix(const std::string& path, Blocking mode) {
    auto sun = unix_address(path);
    if (!sun) return sun.error();
    int flags = SOCK_STREAM | SOCK_CLOEXEC | (mode == Blocking::no ? SOCK_NONBLOCK : 0);
    Fd fd(socket(AF_UNIX, flags, 0));
    if (!fd.valid()) return sys_error("socket for " + path);
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&sun.value()), sizeof(sockaddr_un)) != 0)
        return sys_error("cannot connect to " + path);
    return fd;
}

std::string format_address(const sockaddr* sa, bool with_port) {
    char host[INET6_ADDRSTRLEN] = "";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        if (with_port) return "[" + std::string(host) + "]:" + std::to_string(port);
    } else if (sa->sa_family == AF_UNIX) {
        return "unix";
    }
    if (!with_port) return host;
    return std::string(host) + ":" + std::to_string(port);
}

std::string local_address(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
    return format_address(reinterpret_cast<sockaddr*>(&ss), true);
}

std::string peer_address(int fd, bool* loopback) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (loopback) *loopback = false;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unknown";
    if (loopback) *loopback = is_loopback(reinterpret_cast<sockaddr*>(&ss));
    return format_address(reinterpret_cast<sockaddr*>(&ss), false);
}

bool is_loopback(const sockaddr* sa) {
    if (sa->sa_family == AF_UNIX) return true;
    if (sa->sa_family == AF_INET) {
        auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

namespace {

bool parse_address(const std::string& text, Network& n) {
    if (inet_pton(AF_INET, text.c_str(), n.bytes) == 1) {
        n.family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text.c_str(), n.bytes) == 1) {
        n.family = AF_INET6;
        if (IN6_IS_ADDR_V4MAPPED(reinterpret_cast<const in6_addr*>(n.bytes))) {
            std::memmove(n.bytes, n.bytes + 12, 4);
            std::memset(n.bytes + 4, 0, 12);
            n.family = AF_INET;
        }
        return true;
    }
    return false;
}

bool prefix_matches(const unsigned char* a, const unsigned char* b, int prefix) {
    int whole = prefix / 8, rest = prefix % 8;
    if (std::memcmp(a, b, whole) != 0) return false;
    if (rest == 0) return true;
    unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

Result<std::vector<Network>> parse_networks(std::string_view text) {
    std::vector<Network> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find_first_of(", \t", pos);
        if (end == std::string_view::npos) end = text.size();
        std::string item(text.substr(pos, end - pos));
        pos = end + 1;
        if (item.empty()) continue;
        Network n;
        std::string host = item;
        size_t slash = item.find('/');
        if (slash != std::string::npos) host = item.substr(0, slash);
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        if (!parse_address(host, n)) return make_error(0, "", "not an IP address: " + item);
        int max = n.family == AF_INET ? 32 : 128;
        n.prefix = max;
        if (slash != std::string::npos) {
            std::string digits = item.substr(slash + 1);
            if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string::npos ||
                std::stoi(digits) > max)
                return make_error(0, "", "bad prefix length in " + item);
            n.prefix = std::stoi(digits);
        }
        for (int bit = n.prefix; bit < max; ++bit)
            if (n.bytes[bit / 8] & (0x80 >> (bit % 8))) return make_error(0, "", "host bits set beyond the prefix in " + item);
        out.push_back(n);
    }
    return out;
}

bool in_networks(const std::vector<Network>& networks, const std::string& address) {
    Network a;
    if (!parse_address(address, a)) return false;
    for (const auto& n : networks)
        if (n.family == a.family && prefix_matches(n.bytes, a.bytes, n.prefix)) return true;
    return false;
}

Result<void> set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK)) return {};  // accept4() made it so already
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return sys_error("fcntl O_NONBLOCK");
    return {};
}

}  // namespace ferry::net
