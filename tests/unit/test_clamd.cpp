// The shared clamd client (common/verify/clamd): INSTREAM replies, the exchange over a socket, and the scanned mark ferry-mda trusts.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cstring>
#include <string>
#include <thread>

#include <catch.hpp>

#include "common/verify/clamd.hpp"
#include "common/verify/scanner_socket.hpp"
#include "common/verify/forged_fields.hpp"

using ferry::scan::ClamdVerdict;
using ferry::scan::parse_clamd_reply;

TEST_CASE("clamd client: replies", "[clamd]") {
    CHECK(parse_clamd_reply("stream: OK\n").kind == ClamdVerdict::Kind::clean);
    auto found = parse_clamd_reply(std::string("stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0", 46));
    CHECK(found.kind == ClamdVerdict::Kind::found);
    CHECK(found.text == "Eicar-Test-Signature.UNOFFICIAL");
    CHECK(parse_clamd_reply("stream: " + std::string(300, 'A') + " FOUND").text.size() == 200);
    CHECK(parse_clamd_reply("stream: OKAY").kind == ClamdVerdict::Kind::error);
    CHECK(parse_clamd_reply("FOUND").kind == ClamdVerdict::Kind::error);
    CHECK(parse_clamd_reply("stream: lstat() failed. ERROR").text == "answered \"stream: lstat() failed. ERROR\"");
}

namespace {

// Reads one INSTREAM request from `fd`: the command, then the chunks until the zero-length one.
std::pair<std::string, std::string> read_request(int fd) {
    auto read_n = [fd](size_t n) {
        std::string s(n, '\0');
        for (size_t got = 0; got < n;) {
            ssize_t r = ::read(fd, s.data() + got, n - got);
            if (r <= 0) return std::string();
            got += static_cast<size_t>(r);
        }
        return s;
    };
    std::string command = read_n(10), data;
    for (;;) {
        std::string len = read_n(4);
        if (len.size() != 4) break;
        uint32_t n;
        std::memcpy(&n, len.data(), 4);
        n = ntohl(n);
        if (n == 0) break;
        data += read_n(n);
    }
    return {command, data};
}

}  // namespace

TEST_CASE("clamd client: INSTREAM over a socket", "[clamd]") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    ::fcntl(sv[0], F_SETFL, ::fcntl(sv[0], F_GETFL) | O_NONBLOCK);  // the client's end, as connect_to makes it
    std::string message = std::string(10000, 'x') + "EICAR";
    std::pair<std::string, std::string> seen;
    std::thread clamd([&] {
        seen = read_request(sv[1]);
        const char reply[] = "stream: Test FOUND";
        (void)::send(sv[1], reply, sizeof reply, MSG_NOSIGNAL);
    });
    auto read = [&message](uint64_t at, char* buf, size_t len) -> ferry::Result<size_t> {
        size_t n = std::min<size_t>(len, message.size() - static_cast<size_t>(at));
        std::memcpy(buf, message.data() + at, n);
        return n;
    };
    ClamdVerdict v = ferry::scan::clamd_instream(sv[0], read, ferry::scan::now() + 10, 4096);
    clamd.join();
    ::close(sv[0]);
    ::close(sv[1]);
    CHECK(seen.first == std::string("zINSTREAM\0", 10));
    CHECK(seen.second == message);
    CHECK(v.kind == ClamdVerdict::Kind::found);
    CHECK(v.text == "Test");
}

TEST_CASE("clamd client: a clamd that is not there", "[clamd]") {
    auto read = [](uint64_t, char*, size_t) -> ferry::Result<size_t> { return size_t{0}; };
    ClamdVerdict v = ferry::scan::clamd_scan("/nonexistent/clamd.sock", read, 2);
    CHECK(v.kind == ClamdVerdict::Kind::error);
    CHECK(v.text.rfind("cannot connect to /nonexistent/clamd.sock", 0) == 0);
}

TEST_CASE("clamd mark: ferry-smtpd's, above its own Received:", "[clamd]") {
    using ferry::scan::is_scanned_field;
    using ferry::scan::scanned_by_smtpd;
    CHECK(ferry::scan::scanned_field("mx.test") == "X-Virus-Scanned: clamd at mx.test\n");
    CHECK(is_scanned_field("X-Virus-Scanned: clamd at mx.test\n", "mx.test"));
    CHECK(is_scanned_field("x-virus-scanned:\n\tclamd at MX.Test\r\n", "mx.test"));
    CHECK_FALSE(is_scanned_field("X-Virus-Scanned: clamd at other.test\n", "mx.test"));
    CHECK_FALSE(is_scanned_field("X-Virus-Scanned: amavisd-new at mx.test\n", "mx.test"));
    CHECK_FALSE(is_scanned_field("X-Virus-Scanned: clamd at \n", ""));

    const std::string smtpd_received =
        "Received: from client.test (unknown [127.0.0.1])\n\tby mx.test (ferry) with ESMTP id 0123ABCD; date\n";
    const std::string mark = "X-Virus-Scanned: clamd at mx.test\n";
    CHECK(scanned_by_smtpd(mark + smtpd_received + "Subject: x\n\nbody\n", "mx.test"));
    CHECK(scanned_by_smtpd("X-Spam-Score: 0\n" + mark + "Authentication-Results: mx.test; dkim=none\n" + smtpd_received +
                               "\nbody\n",
                           "mx.test"));
    // A sender's copy sits below the Received: of whoever took the message in.
    CHECK_FALSE(scanned_by_smtpd(smtpd_received + mark + "\nbody\n", "mx.test"));
    const std::string pickup = "Received: from local (uid 0, user root)\n\tby mx.test (ferry-sendmail) id 0123ABCD; date\n";
    CHECK_FALSE(scanned_by_smtpd(pickup + mark + "\nbody\n", "mx.test"));
    // Above another MTA's Received:, or with no Received: at all, it is not ferry-smtpd's.
    CHECK_FALSE(scanned_by_smtpd(mark + "Received: from a by mx.test (Postfix) with ESMTP id 1; date\n\nb\n", "mx.test"));
    CHECK_FALSE(scanned_by_smtpd(mark + "Subject: x\n\nb\n", "mx.test"));
    CHECK_FALSE(scanned_by_smtpd(mark + smtpd_received + "\nb\n", "other.test"));
    CHECK_FALSE(scanned_by_smtpd("\n" + mark + smtpd_received, "mx.test"));
}

TEST_CASE("smtpd: incoming X-Virus-Scanned claiming this host is dropped", "[clamd]") {
    ferry::verify::ForgedResultsFilter f("mx.example.org");
    std::string out;
    f.feed("X-Virus-Scanned: clamd at MX.example.org\nX-Virus-Scanned: clamd at other.example\n"
           "X-Virus-Scanned: Debian amavisd-new at mx.example.org\nx-virus-scanned:\n\tclamd at mx.example.org\n"
           "Subject: x\n\nX-Virus-Scanned: clamd at mx.example.org\n",
           out);
    f.finish(out);
    CHECK(out == "X-Virus-Scanned: clamd at other.example\nX-Virus-Scanned: Debian amavisd-new at mx.example.org\n"
                 "Subject: x\n\nX-Virus-Scanned: clamd at mx.example.org\n");
    CHECK(f.virus_dropped() == 2);
    CHECK(f.dropped() == 0);
}
