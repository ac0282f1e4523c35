// Fuzz target: one whole ferry-managesieve session over a socketpair, the input as the client's bytes.
//
// One Server per process (a one-account database and mail_dir in a temp dir, no TLS); per input the
// account's Maildir starts empty with one script, a Session runs on one end of a socketpair, the
// input goes into the other in pieces, then EOF; the loop runs until the session ends.
// Checked: the greeting's capabilities come first and the output ends in CRLF, no hang.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "mda/managesieve/server.hpp"
#include "mda/managesieve/session.hpp"
#include "tests/fuzz/reader_world.hpp"
#include "tests/fuzz/session_driver.hpp"

using namespace ferry;

namespace {

using World = fuzz::ReaderWorld<managesieve::Server>;

World& world() {
    static std::unique_ptr<World> w =
        fuzz::make_reader_world<managesieve::Server>("managesieve", "hostname = sieve.example.test\n"
                                                                    "managesieve_listen =\n"
                                                                    "managesieve_max_line_length = 256\n"
                                                                    "managesieve_max_script_size = 2k\n"
                                                                    "managesieve_max_scripts = 3\n");
    return *w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    World& w = world();
    fuzz::fresh_maildir(w.maildir);
    ::mkdir((w.maildir + "/sieve").c_str(), 0700);
    fuzz::write_file(w.maildir + "/sieve/rules.sieve", "require \"fileinto\";\r\nfileinto \"Lists\";\r\n");
    auto pair = fuzz::socket_pair();
    auto session = std::make_unique<managesieve::Session>(*w.server, std::move(pair.server), false,
                                                          "F" + std::to_string(++w.sessions));
    session->start();
    std::string out = fuzz::drive(w.base.get(), pair.client,
                                  std::string_view(reinterpret_cast<const char*>(data), size));
    session.reset();
    if (out.compare(0, 16, "\"IMPLEMENTATION\"") != 0) {
        std::fprintf(stderr, "managesieve session fuzzer: no capabilities first\n");
        std::abort();
    }
    if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) {
        std::fprintf(stderr, "managesieve session fuzzer: the output does not end in CRLF\n");
        std::abort();
    }
    return 0;
}
