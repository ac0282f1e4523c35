// Logging: every message stays one line, whatever control characters the text it quotes holds.
#include <catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "common/base/log.hpp"

using namespace ferry;

namespace {

// Runs `body` with stderr (fd 2) sent to a temporary file and returns what was written there.
template <class F>
std::string capture_stderr(F body) {
    char path[] = "/tmp/ferry-log-test-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(saved >= 0);
    dup2(fd, 2);
    body();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    std::string out;
    char buf[4096];
    ssize_t n;
    lseek(fd, 0, SEEK_SET);
    while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    close(fd);
    return out;
}

}  // namespace

TEST_CASE("log escapes control characters so no line can be forged", "[log]") {
    std::string out = capture_stderr([] {
        log::init("ferry-logtest", "stderr", "info");
        const char* user = "x\n2026-01-01T00:00:00.000Z ferry-smtpd[1]: info: AUTH PLAIN user=boss ok";
        log::info("AUTH PLAIN user=%s failed", user);
        log::info("cr\r tab\t esc\x1b del\x7f bell\x07 utf8 \xc3\xa4 back\\slash end");
        log::init("ferry", "stderr", "info");
    });
    CAPTURE(out);
    // Exactly two lines: the LF in the user name did not start a third.
    REQUIRE(std::count(out.begin(), out.end(), '\n') == 2);
    CHECK(out.find("user=x\\x0a2026-01-01T00:00:00.000Z ferry-smtpd[1]: info: AUTH PLAIN user=boss ok failed\n") !=
          std::string::npos);
    CHECK(out.find("cr\\x0d tab\\x09 esc\\x1b del\\x7f bell\\x07 utf8 \xc3\xa4 back\\slash end\n") != std::string::npos);
    CHECK(out.find('\r') == std::string::npos);
    // The pid (kept after the first line) and the time (formatted once a second) are this process's and now's.
    std::string tag = "Z ferry-logtest[" + std::to_string(getpid()) + "]: info: ";
    CHECK(out.find(tag) == 23);
    CHECK(out.find(tag, out.find('\n')) == out.find('\n') + 1 + 23);
    char year[8];
    time_t now = time(nullptr);
    strftime(year, sizeof year, "%Y-", gmtime(&now));
    CHECK(out.rfind(year, 0) == 0);
    CHECK((out[4] == '-' && out[10] == 'T' && out[13] == ':' && out[19] == '.'));
}

TEST_CASE("log escaping of a message at the length limit", "[log]") {
    std::string big(5000, '\n');
    std::string out = capture_stderr([&] {
        log::init("ferry-logtest", "stderr", "info");
        log::info("%s", big.c_str());
        log::init("ferry", "stderr", "info");
    });
    REQUIRE(std::count(out.begin(), out.end(), '\n') == 1);
    // The formatted message is cut at 4095 octets, each of them written as 4.
    size_t n = 0;
    for (size_t p = out.find("\\x0a"); p != std::string::npos; p = out.find("\\x0a", p + 4)) ++n;
    CHECK(n == 4095);
}
