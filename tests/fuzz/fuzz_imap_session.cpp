// Fuzz target: one whole ferry-imapd session over a socketpair, the input as the client's bytes.
//
// One Server per process (a one-account database and mail_dir in a temp dir, no TLS); per input the
// account's Maildir is made anew with three messages in INBOX (its index and folders gone), a Session
// runs on one end of a socketpair, and the client sends "F0 LOGIN demo@example.test secret" and then
// the input in three pieces, then EOF; the loop runs until the session ends. An input that starts
// with '~' is sent as it is, without the login, so the not-authenticated state is fuzzed too.
// Checked: the greeting is "* OK", every line ends in CRLF outside literals, no hang, no leak.
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "common/auth/accounts.hpp"
#include "common/auth/auth.hpp"
#include "common/base/log.hpp"
#include "common/event/event.hpp"
#include "common/program/config.hpp"
#include "common/store/maildir.hpp"
#include "imapd/server.hpp"
#include "imapd/session.hpp"
#include "tests/fuzz/session_driver.hpp"

using namespace ferry;

namespace {

struct World {
    EventBase base{event_base_new()};
    Config config;
    std::unique_ptr<AccountStore> accounts;
    std::unique_ptr<Authenticator> auth;
    std::unique_ptr<imap::Server> server;
    std::string maildir;
    unsigned long long sessions = 0;
};

void write_file(const std::string& path, std::string_view text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
    if (!f) {
        std::fprintf(stderr, "imap session fuzzer: cannot write %s\n", path.c_str());
        std::abort();
    }
}

// demo@example.test's Maildir as a fresh account: one message seen and flagged, a multipart with a
// message/rfc822 part and encoded words (for BODYSTRUCTURE, SEARCH and BODY[1.2]), one without a
// final newline. No index yet: LOGIN and SELECT build it.
void fill_maildir(const std::string& dir) {
    fuzz::empty_dir(dir);
    for (const char* sub : {"/new", "/cur", "/tmp"}) ::mkdir((dir + sub).c_str(), 0700);
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
    static std::unique_ptr<World> w = [] {
        log::init("fuzz-imap-session", "stderr", "error");
        fuzz::LeakCheckPause pause;  // the database opens here, once
        auto w = std::make_unique<World>();
        const std::string& dir = fuzz::temp_dir();
        fuzz::write_accounts(dir + "/accounts.db");
        std::string conf = "hostname = imap.example.test\n"
                           "mail_dir = " + dir + "/mail\n"
                           "account_db = " + dir + "/accounts.db\n"
                           "plaintext_auth = always\n"
                           "auth_failure_delay = 0\n"
                           "auth_max_failures = 0\n"
                           "auth_workers = 1\n"
                           "imapd_listen =\n";
        auto c = Config::parse(conf, "fuzz.conf", "imapd");
        if (!c) {
            std::fprintf(stderr, "config: %s\n", c.error().what().c_str());
            std::abort();
        }
        w->config = std::move(c.value());
        auto md = maildir::account_maildir(w->config.str("mail_dir"), "demo@example.test");
        if (!md) std::abort();
        w->maildir = md.value();
        for (std::string p : {dir + "/mail", dir + "/mail/example.test", dir + "/mail/example.test/demo", w->maildir})
            ::mkdir(p.c_str(), 0700);
        w->accounts = open_account_db(w->config);
        (void)w->accounts->has_domain("example.test");  // opens it now, not in a session
        w->auth = std::make_unique<Authenticator>(w->base.get(), *w->accounts, w->config);
        w->server = std::make_unique<imap::Server>(w->base.get(), w->config, std::nullopt, *w->auth);
        return w;
    }();
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
