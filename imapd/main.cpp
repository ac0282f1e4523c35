// ferry-imapd: wires configuration, TLS, listeners, privileges, accounts and the IMAP server together.
#include <memory>

#include "common/auth/accounts.hpp"
#include "common/auth/auth.hpp"
#include "common/program/daemon.hpp"
#include "common/program/declaration.hpp"
#include "common/store/index.hpp"
#include "common/program/reader_server.hpp"
#include "imapd/server.hpp"

using namespace ferry;

// ferry-imapd(8), FILES: it reads and updates the Maildirs under mail_dir and reads the account database.
static const Declaration kDeclaration{
    .user = "mail_user",
    .directories = {
        {.key = "mail_dir", .owner = Owner::mail_user, .mode = 0700},
        {.key = "account_db", .parent_of_file = true, .owner = Owner::root, .mode = 0750},
    },
    .sockets = {},
    .peers = {},
};

int main(int argc, char** argv) {
    Options opt = start_program(argc, argv, "imapd");
    const Config& config = opt.config;
    // Tests stop a flag change or an expunge between its file and its index record (ferry-mailstore(5)).
    if (!config.str("test_pause_at").empty())
        store::set_pause_hook([&config](const char* point) { test_pause_point(config, point); });

    // The key and the ports may need root: loaded and bound first, then privileges are dropped.
    ReaderStart start = start_reader(config, kDeclaration, imap::kNames);
    auto accounts = open_account_db(config);
    Authenticator auth(start.base.get(), *accounts, config);
    return run_reader(start, std::make_unique<imap::Server>(start.base.get(), config, std::move(start.tls), auth));
}
