// Fuzz target: one whole ferry-smtpd session over a socketpair, the input as the client's bytes.
//
// One Server per process (spool and a one-account database in a temp dir, no TLS, qmgr_socket
// missing so every notify is only logged); per input a Session on one end of a socketpair, the
// input written into the other in three pieces, then EOF; the loop runs until the session ends.
// Checked: every reply line is a well-formed SMTP reply, nothing is left in incoming/, no hang.
#include <dirent.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "common/base/log.hpp"
#include "common/event/event.hpp"
#include "common/program/config.hpp"
#include "common/spool/spool.hpp"
#include "mta/smtpd/server.hpp"
#include "mta/smtpd/session.hpp"
#include "tests/fuzz/session_driver.hpp"

using namespace ferry;

namespace {

struct World {
    EventBase base{event_base_new()};
    Config config;
    std::unique_ptr<smtpd::Server> server;
    std::string spool;
    unsigned long long sessions = 0;
};

World& world() {
    // Destroyed at exit (the account database closed), before the temp dir it made is removed.
    static std::unique_ptr<World> w = [] {
        log::init("fuzz-smtp-session", "stderr", "error");
        fuzz::LeakCheckPause pause;  // the database opens here, once
        auto w = std::make_unique<World>();
        const std::string& dir = fuzz::temp_dir();
        w->spool = dir + "/spool";
        fuzz::write_accounts(dir + "/accounts.db");
        // Small limits, so the fuzzer reaches them; no delays, so a session takes milliseconds.
        std::string conf = "hostname = mx.example.test\n"
                           "spool_dir = " + w->spool + "\n"
                           "account_db = " + dir + "/accounts.db\n"
                           "qmgr_socket = " + dir + "/no-qmgr.sock\n"
                           "postmaster_address = postmaster@example.test\n"
                           "message_size_limit = 4k\n"
                           "plaintext_auth = always\n"
                           "auth_failure_delay = 0\n"
                           "auth_max_failures = 0\n"
                           "auth_workers = 1\n"
                           "smtpd_listen =\n"
                           "smtpd_timeout = 30s\n"
                           "smtpd_max_command_length = 512\n"
                           "smtpd_max_line_length = 1000\n"
                           "smtpd_max_header_size = 2k\n"
                           "smtpd_max_recipients = 3\n"
                           "smtpd_max_errors = 8\n"
                           "smtpd_spf_policy = off\n"
                           "smtpd_dkim_verify = no\n";
        auto c = Config::parse(conf, "fuzz.conf", "smtpd");
        if (!c) {
            std::fprintf(stderr, "config: %s\n", c.error().what().c_str());
            std::abort();
        }
        w->config = std::move(c.value());
        w->server = std::make_unique<smtpd::Server>(w->base.get(), w->config, std::nullopt);
        if (auto r = w->server->start(); !r) {
            std::fprintf(stderr, "start: %s\n", r.error().what().c_str());
            std::abort();
        }
        return w;
    }();
    return *w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    World& w = world();
    auto pair = fuzz::socket_pair();
    auto session = std::make_unique<smtpd::Session>(*w.server, std::move(pair.server), smtpd::ListenerKind::smtp,
                                                    "F" + std::to_string(++w.sessions));
    std::string out = fuzz::drive(w.base.get(), pair.client,
                                  std::string_view(reinterpret_cast<const char*>(data), size));
    session.reset();
    fuzz::check_smtp_replies(out, "smtp");
    if (out.compare(0, 4, "220 ") != 0) {
        std::fprintf(stderr, "smtp session fuzzer: no 220 greeting first\n");
        std::abort();
    }
    // A session that ended, however, leaves no half-received message behind.
    std::string incoming = w.spool + "/" + spool::kIncoming;
    fuzz::empty_dir(w.spool + "/" + spool::kQueue);
    if (DIR* d = ::opendir(incoming.c_str())) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') {
                std::fprintf(stderr, "smtp session fuzzer: %s left in incoming/\n", e->d_name);
                std::abort();
            }
        ::closedir(d);
    }
    return 0;
}
