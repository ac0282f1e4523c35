// Unit tests of the Junk learning hook: which moves teach what, and running a command over a message.
#include <catch.hpp>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <string>

#include "common/base/fd.hpp"
#include "imapd/learn.hpp"

using namespace ferry;
using namespace ferry::imap;

extern char** environ;

TEST_CASE("learn_verdict: into Junk is spam, out of it ham unless into Trash", "[imap][learn]") {
    struct Row {
        const char *from, *to, *junk, *trash;
        std::optional<Verdict> want;
    };
    const Row rows[] = {
        {"INBOX", "Junk", "Junk", "Trash", Verdict::spam},
        {"Archive/2026", "Junk", "Junk", "Trash", Verdict::spam},
        {"Trash", "Junk", "Junk", "Trash", Verdict::spam},
        {"Junk", "INBOX", "Junk", "Trash", Verdict::ham},
        {"Junk", "Archive", "Junk", "Trash", Verdict::ham},
        {"Junk", "Trash", "Junk", "Trash", std::nullopt},
        {"Junk", "Junk", "Junk", "Trash", std::nullopt},
        {"INBOX", "Archive", "Junk", "Trash", std::nullopt},
        {"INBOX", "Spam", "Spam", "", Verdict::spam},   // the user's own \Junk folder
        {"Spam", "Trash", "Spam", "", Verdict::ham},     // no \Trash: every other folder is ham
        {"INBOX", "Junk", "", "Trash", std::nullopt},    // no \Junk folder at all
    };
    for (const auto& r : rows) {
        CAPTURE(r.from, r.to, r.junk, r.trash);
        CHECK(learn_verdict(r.from, r.to, r.junk, r.trash) == r.want);
    }
}

namespace {

// A file holding `text`, open for reading at its end (as COPY leaves it), unlinked.
Fd message_file(const std::string& text) {
    char path[] = "/tmp/ferry-learn-XXXXXX";
    Fd fd(::mkstemp(path));
    REQUIRE(fd.valid());
    ::unlink(path);
    REQUIRE(::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    return fd;
}

std::string read_file(const std::string& path) {
    std::string out;
    Fd fd(::open(path.c_str(), O_RDONLY));
    char buf[4096];
    for (ssize_t n; fd.valid() && (n = ::read(fd.get(), buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    return out;
}

}  // namespace

TEST_CASE("run_command: the message on stdin, its exit status, a timeout and a stop", "[imap][learn]") {
    char dir[] = "/tmp/ferry-learn-dir-XXXXXX";
    REQUIRE(::mkdtemp(dir));
    std::string out = std::string(dir) + "/out";
    Fd msg = message_file("Subject: $(touch x)\n\nbody\n");
    Fd stop(::eventfd(0, EFD_CLOEXEC));

    auto r = run_command("cat > '" + out + "'; exit 0", msg.get(), environ, 10, stop.get());
    CHECK(r.ok());
    CHECK(r.text() == "exit=0");
    CHECK(read_file(out) == "Subject: $(touch x)\n\nbody\n");  // from the start, whatever the offset was

    CHECK(run_command("exit 7", msg.get(), environ, 10, stop.get()).text() == "exit=7");
    CHECK(run_command("kill -TERM $$", msg.get(), environ, 10, stop.get()).text() == "signal=15");
    // Only 0, 1 and 2 are open in the command: the message file is not there under its own number.
    CHECK(run_command("test ! -e /proc/self/fd/" + std::to_string(msg.get()), msg.get(), environ, 10, stop.get()).ok());

    // The timeout kills the group: the background sleep does not keep the command alive.
    auto slow = run_command("sleep 30 & wait", msg.get(), environ, 0.3, stop.get());
    CHECK(slow.kind == CommandOutcome::Kind::timed_out);
    CHECK(slow.text() == "timeout");

    uint64_t one = 1;
    REQUIRE(::write(stop.get(), &one, sizeof one) == sizeof one);
    CHECK(run_command("sleep 30", msg.get(), environ, 0, stop.get()).kind == CommandOutcome::Kind::stopped);

    ::unlink(out.c_str());
    ::rmdir(dir);
}
