// ferry-popd: wires configuration, TLS, listeners, privileges, accounts and the POP3 server together.
#include <sysexits.h>

#include <memory>

#include "common/auth/accounts.hpp"
#include "common/auth/auth.hpp"
#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/program/declaration.hpp"
#include "common/program/reader_server.hpp"
#include "popd/listener.hpp"

using namespace ferry;

// ferry-popd(8), FILES: it reads and updates the Maildirs under mail_dir and reads the account database.
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
    Options opt = start_program(argc, argv, "popd");
    const Config& config = opt.config;

    if (auto r = pop3::check_config(config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_CONFIG;
    }
    // The key and the ports may need root: loaded and bound first, then privileges are dropped.
    ReaderStart start = start_reader(config, kDeclaration, pop3::kNames);
    auto accounts = open_account_db(config);
    Authenticator auth(start.base.get(), *accounts, config);
    return run_reader(start, std::make_unique<pop3::Server>(start.base.get(), config, std::move(start.tls), auth));
}
