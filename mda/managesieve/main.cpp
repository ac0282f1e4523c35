// ferry-managesieve: wires configuration, TLS, listeners, privileges, accounts and the ManageSieve server together.
#include <memory>

#include "common/auth/accounts.hpp"
#include "common/auth/auth.hpp"
#include "common/program/daemon.hpp"
#include "common/program/declaration.hpp"
#include "common/program/reader_server.hpp"
#include "mda/managesieve/server.hpp"

using namespace ferry;

// ferry-managesieve(8), FILES: it writes the sieve/ directory of the Maildirs under mail_dir (as
// mail_user) and reads the account database.
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
    Options opt = start_program(argc, argv, "managesieve");
    const Config& config = opt.config;
    // The key and the ports may need root: loaded and bound first, then privileges are dropped.
    ReaderStart start = start_reader(config, kDeclaration, managesieve::kNames);
    auto accounts = open_account_db(config);
    Authenticator auth(start.base.get(), *accounts, config);
    return run_reader(start,
                      std::make_unique<managesieve::Server>(start.base.get(), config, std::move(start.tls), auth));
}
