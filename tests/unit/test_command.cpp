// run_command's captured output: stdout into a file up to a limit, the start of stderr, the group killed when the shell ends.
#include <catch.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "common/base/command.hpp"
#include "common/base/fd.hpp"

extern char** environ;

using namespace ferry;

namespace {
Fd memory_file(const std::string& content = "") {
    Fd fd(::memfd_create("test", MFD_CLOEXEC));
    REQUIRE(fd.valid());
    REQUIRE(::write(fd.get(), content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    return fd;
}
std::string contents(int fd) {
    std::string s(65536, '\0');
    ssize_t n = ::pread(fd, s.data(), s.size(), 0);
    s.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return s;
}
}  // namespace

TEST_CASE("run_command captures stdout up to a limit and the start of stderr", "[command]") {
    Fd in = memory_file("Subject: hi\n\nbody\n");
    Fd out = memory_file();
    std::string err;
    CommandCapture cap{out.get(), 1000, 0, &err, 10};
    auto r = run_command("sed 's/hi/ho/'; echo 'an error message, long' >&2", in.get(), environ, 10, -1, &cap);
    CHECK(r.ok());
    CHECK(contents(out.get()) == "Subject: ho\n\nbody\n");
    CHECK(cap.out_size == 18);
    CHECK(err == "an error m");

    Fd big = memory_file();
    CommandCapture small{big.get(), 100, 0, nullptr, 0};
    CHECK(run_command("yes", in.get(), environ, 10, -1, &small).kind == CommandOutcome::Kind::too_large);
    CHECK(small.out_size <= 100);
}

TEST_CASE("run_command does not wait for what the shell left running", "[command]") {
    Fd in = memory_file("x");
    Fd out = memory_file();
    CommandCapture cap{out.get(), 1000, 0, nullptr, 0};
    // The background sleep holds stdout open: the shell's end kills it, the pipe closes.
    auto r = run_command("sleep 30 & echo started; exit 3", in.get(), environ, 20, -1, &cap);
    CHECK(r.text() == "exit=3");
    CHECK(contents(out.get()) == "started\n");
    CHECK(run_command("kill -SEGV $$", in.get(), environ, 10, -1, &cap).text() == "signal=11");
    CHECK(run_command("sleep 30", in.get(), environ, 0.3, -1, &cap).kind == CommandOutcome::Kind::timed_out);
}
