// Fuzz target: one whole ferry-imapd session over a socketpair, the input as the client's bytes.
//
// One Server per process (a one-account database and mail_dir in a temp dir, no TLS); per input the
// account's Maildir is made anew with three messages in INBOX (its index and folders gone), a Session
// runs on one end of a socketpair, and the client sends "F0 LOGIN demo@example.test secret" and then
// the input in three pieces, then EOF; the loop runs until the session ends. An input that starts
// with '~' is sent as it is, without the login, so the not-authenticated state is fuzzed too.
// Checked: the greeting is "* OK", every line ends in CRLF outside literals, no hang, no leak.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "imapd/server.hpp"
#include "imapd/session.hpp"
#include "tests/fuzz/reader_world.hpp"
#include "tests/fuzz/session_driver.hpp"

using namespace ferry;

namespace {

using World = fuzz::ReaderWorld<imap::Server>;
using fuzz::write_file;

// demo@example.test's Maildir as a fresh account: one message seen and flagged, a multipart with a
// message/rfc822 part and encoded words (for BODYSTRUCTURE, SEARCH and BODY[1.2]), one without a
// final newline. No index yet: LOGIN and SELECT build it.
void fill_maildir(const std::string& dir) {
    fuzz::fresh_maildir(dir);
    write_file(dir + "/cur/1700000000.M1P1.fuzz,S=84:2,FS",
               "Subject: one\nFrom: A <a@example.org>\nTo: demo@example.test\nDate: 1 Jan 2024 10:00 +0000\n\n"
               "first message\n");
    write_file(dir + "/new/1700000001.M2P1.fuzz",
               "Subject: =?UTF-8?Q?z=C3=BCrich?=\nFrom: b@example.org\nMIME-Version: 1.0\n"
               "Content-Type: multipart/mixed; boundary=\"b1\"\n\npre\n--b1\nContent-Type: text/plain; charset=utf-8\n"
               "Content-Transfer-Encoding: quoted-printable\n\nZ=C3=BCrich caf=C3=A9\n--b1\n"
               "Content-Type: message/rfc822\n\nSubject: inner\nFrom: c@example.org\n\ninner body\n--b1--\n");
    write_file(dir + "/new/1700000002.M3P1.fuzz", "Subject: three\n\nno final newline");
}

World& world() {
    // Destroyed at exit (the account database closed), before the temp dir it made is removed.
    static std::unique_ptr<World> w =
        fuzz::make_reader_world<imap::Server>("imapd", "hostname = imap.example.test\n"
                                                     "imapd_listen =\n");
    return *w;
}

// Every line ends in CRLF; a literal announced as {n} at a line's end is skipped whole.
void check_lines(std::string_view out) {
    size_t pos = 0;
    while (pos < out.size()) {
        size_t lf = out.find('\n', pos);
        if (lf == std::string_view::npos || lf == pos || out[lf - 1] != '\r') {
            std::fprintf(stderr, "imap session fuzzer: a line without CRLF at byte %zu of the output\n", pos);
            std::abort();
        }
        std::string_view line = out.substr(pos, lf - 1 - pos);
        pos = lf + 1;
        if (line.empty() || line.back() != '}') continue;
        size_t open = line.rfind('{');
        if (open == std::string_view::npos) continue;
        std::string digits(line.substr(open + 1, line.size() - open - 2));
        if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
        pos += std::stoull(digits);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    World& w = world();
    fill_maildir(w.maildir);
    std::string_view raw(reinterpret_cast<const char*>(data), size);
    std::string input;
    if (!raw.empty() && raw[0] == '~') raw.remove_prefix(1);
    else input = "F0 LOGIN demo@example.test secret\r\n";
    input.append(raw);
    auto pair = fuzz::socket_pair();
    auto session = std::make_unique<imap::Session>(*w.server, std::move(pair.server), false,
                                                   "F" + std::to_string(++w.sessions));
    session->start();
    std::string out = fuzz::drive(w.base.get(), pair.client, input);
    session.reset();
    if (out.compare(0, 5, "* OK ") != 0) {
        std::fprintf(stderr, "imap session fuzzer: no * OK greeting first\n");
        std::abort();
    }
    check_lines(out);
    return 0;
}
