// What the reader session fuzzers (popd, imapd) share: one account, its Maildir and one server per process.
#pragma once

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/auth/accounts.hpp"
#include "common/auth/auth.hpp"
#include "common/base/log.hpp"
#include "common/event/event.hpp"
#include "common/program/config.hpp"
#include "common/store/maildir.hpp"
#include "tests/fuzz/session_driver.hpp"

namespace fuzz {

template <class Server>
struct ReaderWorld {
    ferry::EventBase base{event_base_new()};
    ferry::Config config;
    std::unique_ptr<ferry::AccountStore> accounts;
    std::unique_ptr<ferry::Authenticator> auth;
    std::unique_ptr<Server> server;
    std::string maildir;
    unsigned long long sessions = 0;
};

inline void write_file(const std::string& path, std::string_view text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
    if (!f) {
        std::fprintf(stderr, "session fuzzer: cannot write %s\n", path.c_str());
        std::abort();
    }
}

// demo@example.test's Maildir emptied and its new/, cur/ and tmp/ made again (no index, no folders).
inline void fresh_maildir(const std::string& dir) {
    empty_dir(dir);
    for (const char* sub : {"/new", "/cur", "/tmp"}) ::mkdir((dir + sub).c_str(), 0700);
}

// The world of `program` ("popd", "imapd"): a one-account database (see write_accounts) and mail_dir
// in the process's temp dir, no TLS, logins without delays or limits, and `conf` as the rest of
// the config (the hostname and listen keys). Made once per process, destroyed at exit.
template <class Server>
std::unique_ptr<ReaderWorld<Server>> make_reader_world(const char* program, const std::string& conf) {
    ferry::log::init((std::string("fuzz-") + program + "-session").c_str(), "stderr", "error");
    LeakCheckPause pause;  // the database opens here, once
    auto w = std::make_unique<ReaderWorld<Server>>();
    const std::string& dir = temp_dir();
    write_accounts(dir + "/accounts.db");
    std::string text = "mail_dir = " + dir + "/mail\n"
                       "account_db = " + dir + "/accounts.db\n"
                       "plaintext_auth = always\n"
                       "auth_failure_delay = 0\n"
                       "auth_max_failures = 0\n"
                       "auth_workers = 1\n" + conf;
    auto c = ferry::Config::parse(text, "fuzz.conf", program);
    if (!c) {
        std::fprintf(stderr, "config: %s\n", c.error().what().c_str());
        std::abort();
    }
    w->config = std::move(c.value());
    auto md = ferry::maildir::account_maildir(w->config.str("mail_dir"), "demo@example.test");
    if (!md) std::abort();
    w->maildir = md.value();
    for (std::string p : {dir + "/mail", dir + "/mail/example.test", dir + "/mail/example.test/demo", w->maildir})
        ::mkdir(p.c_str(), 0700);
    w->accounts = ferry::open_account_db(w->config);
    (void)w->accounts->has_domain("example.test");  // opens it now, not in a session
    w->auth = std::make_unique<ferry::Authenticator>(w->base.get(), *w->accounts, w->config);
    w->server = std::make_unique<Server>(w->base.get(), w->config, std::nullopt, *w->auth);
    return w;
}

}  // namespace fuzz
