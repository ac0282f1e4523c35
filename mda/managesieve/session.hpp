// One ManageSieve connection (RFC 5804): STARTTLS, SASL, then the account's scripts on a ferry::Stream.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/auth/auth.hpp"
#include "common/auth/sasl_login.hpp"
#include "common/base/command_table.hpp"
#include "common/event/deadline.hpp"
#include "common/event/session_set.hpp"
#include "common/event/stream.hpp"
#include "common/store/sieve_scripts.hpp"
#include "mda/managesieve/command.hpp"

namespace ferry::managesieve {

class Server;

class Session final : public Stream::Handler, public ServedSession {
public:
    Session(Server& server, Fd fd, bool implicit_tls, std::string id);
    ~Session() override;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Greets with the capabilities, or starts the TLS handshake first on an implicit-TLS port.
    void start();

    void on_input(Stream& stream) noexcept override;
    void on_close(Stream& stream, const std::string& reason) noexcept override;
    void on_timeout(Stream& stream) noexcept override;
    void on_lifetime_expired() override;
    void on_stop() override;

private:
    enum class State { handshake, unauthenticated, sasl, checking, authenticated, done };

    void greet();
    void read_commands(Stream& stream);
    bool drain_refused(evbuffer* in);
    void track_deadline();
    void hang_up(const std::string& line, const std::string& reason);
    void on_scan_error(const Scan& scan);
    void dispatch(const Command& cmd);
    using CommandDef = CommandSpec<Verb, Result<void> (*)(Session&, const Request&), void (*)(Session&, const Request&)>;
    static const CommandDef kCommands[];

    // Before login
    std::string capabilities() const;
    bool plaintext_ok() const;
    void cmd_starttls();
    void cmd_authenticate(const Request& req);
    void after_sasl(SaslLogin::Next next);
    void on_auth_result(const AuthResult& r);
    void login(const std::string& user);

    // After login
    void cmd_havespace(const Request& req);
    void cmd_putscript(const Request& req);
    void cmd_checkscript(const Request& req);
    void cmd_listscripts();
    void cmd_setactive(const Request& req);
    void cmd_getscript(const Request& req);
    void cmd_deletescript(const Request& req);
    void cmd_renamescript(const Request& req);
    void cmd_unauthenticate();
    void cmd_logout();
    // A script's size against managesieve_max_script_size; the NO when it is over.
    bool size_ok(uint64_t size);
    // Compiles with mda/sieve; the NO naming line and column when it fails.
    bool compiles(const std::string& text);
    void reply_store_error(const Error& e, const char* what);

    void reply(std::string_view text) { stream_.write(text); }

    Server& server_;
    Stream stream_;
    std::string id_;
    bool implicit_tls_;
    RequestDeadline deadline_;  // managesieve_command_deadline: a command from its first byte to its end
    State state_ = State::handshake;
    uint64_t discard_ = 0;      // octets of a refused literal still to drop
    bool skip_line_ = false;    // dropping the rest of a refused line
    unsigned errors_ = 0;       // bad commands in a row (managesieve_max_errors)
    LoginCheck login_check_;
    SaslLogin sasl_;  // after login_check_, which it uses
    std::string login_;
    std::optional<store::SieveScripts> scripts_;
};

}  // namespace ferry::managesieve
