// Fuzz target: one whole ferry-popd session over a socketpair, the input as the client's bytes.
//
// One Server per process (a one-account database and mail_dir in a temp dir, no TLS); per input the
// account's Maildir is filled anew with three messages, a Session runs on one end of a socketpair,
// the input goes into the other in three pieces, then EOF; the loop runs until the session ends.
// Checked: the greeting is +OK, every line ends in CRLF (no bare LF, even inside messages), no hang.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "popd/listener.hpp"
#include "popd/session.hpp"
#include "tests/fuzz/reader_world.hpp"
#include "tests/fuzz/session_driver.hpp"

using namespace ferry;

namespace {

using World = fuzz::ReaderWorld<pop3::Server>;
using fuzz::write_file;

// demo@example.test's Maildir as it was before the last session's DELE and QUIT: one message
// seen, two new (one with a dot line and a long line, which RETR and TOP must stuff and pass).
void fill_maildir(const std::string& dir) {
    fuzz::fresh_maildir(dir);
    write_file(dir + "/cur/1700000000.M1P1.fuzz,S=52:2,S", "Subject: one\nFrom: a@example.org\n\nfirst message\n");
    write_file(dir + "/new/1700000001.M2P1.fuzz", "Subject: two\r\n\r\n.\r\n..\r\nline\r\n" + std::string(1500, 'x') + "\r\n");
    write_file(dir + "/new/1700000002.M3P1.fuzz", "Subject: three\n\nno final newline");
}

World& world() {
    // Destroyed at exit (the account database closed), before the temp dir it made is removed.
    static std::unique_ptr<World> w =
        fuzz::make_reader_world<pop3::Server>("popd", "hostname = pop.example.test\n"
                                                     "popd_listen =\n"
                                                     "popd_max_line_length = 255\n"
                                                     "popd_expire = 30\n");
    return *w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    World& w = world();
    fill_maildir(w.maildir);
    auto pair = fuzz::socket_pair();
    auto session = std::make_unique<pop3::Session>(*w.server, std::move(pair.server), false,
                                                   "F" + std::to_string(++w.sessions));
    session->start();
    std::string out = fuzz::drive(w.base.get(), pair.client,
                                  std::string_view(reinterpret_cast<const char*>(data), size));
    session.reset();
    if (out.compare(0, 4, "+OK ") != 0) {
        std::fprintf(stderr, "pop3 session fuzzer: no +OK greeting first\n");
        std::abort();
    }
    if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) {
        std::fprintf(stderr, "pop3 session fuzzer: the output does not end in CRLF\n");
        std::abort();
    }
    for (size_t lf = out.find('\n'); lf != std::string::npos; lf = out.find('\n', lf + 1))
        if (lf == 0 || out[lf - 1] != '\r') {
            std::fprintf(stderr, "pop3 session fuzzer: a bare LF at byte %zu of the output\n", lf);
            std::abort();
        }
    return 0;
}
