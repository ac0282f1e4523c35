// pop3-source: a POP3 client that times RETR of messages 1..N one at a time, as smtp-source does for SMTP.
//
// Usage: pop3-source HOST PORT USER PASSWORD COUNT [PASSES]
// Each pass is a session of its own (greeting, USER, PASS, then RETR 1 .. RETR COUNT, each sent
// after the whole reply to the one before, then QUIT). Prints one line per pass:
//   pass <k> <count> messages <octets> octets <seconds> s
// The client does no more than find the end of each reply, so that a fast server is not measured
// as fast as the client: a Python client costs about as much per round trip as the fastest server.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

[[noreturn]] void die(const std::string& why) {
    std::fprintf(stderr, "pop3-source: %s\n", why.c_str());
    std::exit(1);
}

class Conn {
public:
    Conn(const char* host, const char* port) {
        addrinfo hints{};
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        if (getaddrinfo(host, port, &hints, &res) != 0 || !res) die(std::string("cannot resolve ") + host);
        fd_ = socket(res->ai_family, SOCK_STREAM, 0);
        if (fd_ < 0 || connect(fd_, res->ai_addr, res->ai_addrlen) != 0) die("cannot connect");
        freeaddrinfo(res);
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    ~Conn() { close(fd_); }
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;

    void send(const std::string& s) {
        size_t off = 0;
        while (off < s.size()) {
            ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n <= 0) die("send failed");
            off += static_cast<size_t>(n);
        }
    }

    // One status line; dies unless it is +OK.
    void ok_line() {
        for (;;) {
            size_t eol = buf_.find("\r\n");
            if (eol != std::string::npos) {
                if (buf_.compare(0, 3, "+OK") != 0) die("server said: " + buf_.substr(0, eol));
                buf_.erase(0, eol + 2);
                return;
            }
            fill();
        }
    }

    // A multi-line reply (status line, lines, "." line); returns its octets. Only the bytes around
    // each read's end are looked at for the terminator after the status line is in.
    size_t multi_line() {
        size_t octets = 0;
        while (buf_.find("\r\n") == std::string::npos) fill();
        if (buf_.compare(0, 3, "+OK") != 0) die("server said: " + buf_.substr(0, buf_.find("\r\n")));
        // The status line's own CRLF starts the search: a body that is empty ends right after it.
        size_t from = buf_.find("\r\n");
        for (;;) {
            size_t end = buf_.find("\r\n.\r\n", from);
            if (end != std::string::npos) {
                octets += end + 5;
                buf_.erase(0, end + 5);
                return octets;
            }
            // Keep the last four octets: the terminator may straddle two reads.
            if (buf_.size() > 4) {
                octets += buf_.size() - 4;
                buf_.erase(0, buf_.size() - 4);
            }
            from = 0;
            fill();
        }
    }

private:
    void fill() {
        char chunk[1 << 16];
        ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0) die("connection closed");
        buf_.append(chunk, static_cast<size_t>(n));
    }

    int fd_ = -1;
    std::string buf_;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 6 || argc > 7) die("usage: pop3-source HOST PORT USER PASSWORD COUNT [PASSES]");
    long count = std::strtol(argv[5], nullptr, 10);
    long passes = argc == 7 ? std::strtol(argv[6], nullptr, 10) : 1;
    if (count < 1 || count > 10000000 || passes < 1 || passes > 1000) die("COUNT or PASSES out of range");
    for (long k = 1; k <= passes; ++k) {
        Conn c(argv[1], argv[2]);
        c.ok_line();
        c.send(std::string("USER ") + argv[3] + "\r\n");
        c.ok_line();
        c.send(std::string("PASS ") + argv[4] + "\r\n");
        c.ok_line();
        size_t octets = 0;
        auto t0 = std::chrono::steady_clock::now();
        for (long n = 1; n <= count; ++n) {
            c.send("RETR " + std::to_string(n) + "\r\n");
            octets += c.multi_line();
        }
        std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;
        std::printf("pass %ld %ld messages %zu octets %.6f s\n", k, count, octets, took.count());
        std::fflush(stdout);
        c.send("QUIT\r\n");
        c.ok_line();
    }
    return 0;
}
