// One POP3 connection: AUTHORIZATION, TRANSACTION and UPDATE states (RFC 1939) on a ferry::Stream.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/auth/auth.hpp"
#include "common/base/command_table.hpp"
#include "common/event/event.hpp"
#include "common/auth/sasl_login.hpp"
#include "common/event/deadline.hpp"
#include "common/event/line_framer.hpp"
#include "common/event/session_set.hpp"
#include "common/event/stream.hpp"
#include "popd/command.hpp"
#include "popd/maildrop.hpp"
#include "popd/response.hpp"

namespace ferry::pop3 {

class Server;

// What every session reads from ferry.conf, once.
struct Settings {
    Limits limits;
    double idle_timeout = 600;        // popd_idle_timeout (RFC 1939: at least 10 minutes)
    double handshake_timeout = 30;    // tls_handshake_timeout
    std::string mail_dir;
    std::string hostname;
    std::string plaintext_auth;       // never | loopback | always
    std::string expire;               // popd_expire: "" (not announced), "never", or days
    std::chrono::seconds login_delay{0};  // popd_login_delay: 0 = not announced
    double command_deadline = 60;     // popd_command_deadline: a command line from first byte to end
};

class Session final : public Stream::Handler, public ServedSession {
public:
    Session(Server& server, Fd fd, bool implicit_tls, std::string id);
    ~Session() override;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Greets, or starts the TLS handshake first on a pop3s connection.
    void start();
    const std::string& peer() const { return stream_.peer(); }

    void on_input(Stream& stream) noexcept override;
    void on_close(Stream& stream, const std::string& reason) noexcept override;
    void on_timeout(Stream& stream) noexcept override;
    void on_lifetime_expired() override;
    void on_stop() override;

private:
    // checking: a password check runs; opening: the maildrop scan; done: QUIT given (UPDATE runs off the loop).
    enum class State { handshake, authorization, sasl, checking, opening, transaction, done };

    void greet();
    void read_lines(Stream& stream);
    void track_deadline();
    void hang_up(const std::string& line, const std::string& reason);
    void process_line(std::string_view line);
    void dispatch(const Command& cmd);
    // The command table: per verb the states it is allowed in (CAPA and QUIT in both).
    using CommandDef = CommandSpec<Verb, Result<void> (*)(Session&, const Command&), void (*)(Session&, const Command&)>;
    static const CommandDef kCommands[];

    // AUTHORIZATION
    void cmd_capa();
    void cmd_user(const Command& cmd);
    void cmd_pass(const Command& cmd);
    void cmd_auth(const Command& cmd);
    void cmd_stls();
    void after_sasl(SaslLogin::Next next);
    void on_auth_result(const AuthResult& r);
    void login(const std::string& user);
    void on_maildrop(const std::string& user, Result<MaildropScan> scan);
    bool plaintext_ok() const;
    void refuse_plaintext();

    // TRANSACTION
    void cmd_stat();
    void cmd_list(const Command& cmd, bool uidl);
    void cmd_retr(const Command& cmd, std::optional<uint64_t> top_lines);
    void pump();
    void on_chunk();
    void cmd_dele(const Command& cmd);
    void cmd_rset();
    void cmd_quit();
    void on_update(const UpdateResult& u, size_t left);
    // Runs `work` on the server's pool and then `done(*this, result)` on the loop, unless the session
    // is gone by then (the result is dropped on the loop instead).
    template <class Work, class Done>
    void off_loop(Work work, Done done);
    MaildropMessage* message_or_error(const Command& cmd);

    void reply(std::string_view text) { stream_.write(text); }
    // Flow control: stop reading commands while a client lets retrieved mail pile up unread.
    bool output_backlogged();
    void on_output_low(Stream& stream) noexcept override;

    Server& server_;
    Stream stream_;
    std::string id_;
    bool implicit_tls_;
    // popd_command_deadline: idleness alone never ends a line sent one byte a minute.
    LineFramer lines_;  // command lines under limits.max_line; skips the rest of an over-long one
    RequestDeadline deadline_;
    State state_ = State::handshake;
    std::string user_;           // from USER, waiting for PASS
    std::string login_;          // the authenticated address
    LoginCheck login_check_;
    SaslLogin sasl_;  // after login_check_, which it uses
    std::optional<Maildrop> maildrop_;
    // A RETR or TOP being sent: its file, read and encoded a chunk at a time on a worker as the
    // client drains the output. Shared with the job that reads it; the loop does not touch it then.
    struct Transfer {
        MaildropMessage message;     // a copy: open_file may learn its new path
        uint64_t number = 0;         // in the maildrop
        std::optional<uint64_t> top_lines;
        Fd fd;
        MessageEncoder encoder;
        std::string out;             // the next chunk on the wire, after the +OK line for the first
        Result<void> status;         // an open or read error
        bool finished = false;       // the ".\r\n" is in `out`
        bool started = false;        // the +OK is out (the loop's)
        bool ready = false;          // a read-ahead's job is done (the loop's)
    };
    std::shared_ptr<Transfer> make_transfer(const MaildropMessage& m, uint64_t number, std::optional<uint64_t> top_lines);
    bool take_ahead(uint64_t number);
    void read_ahead(uint64_t number);
    void on_read_ahead(const std::vector<std::shared_ptr<Transfer>>& batch);
    std::shared_ptr<Transfer> transfer_;
    std::deque<std::shared_ptr<Transfer>> ahead_;  // read ahead for the next RETRs, in message order
    bool reading_ahead_ = false;                   // their job runs
    bool reading_ = false;           // a chunk job runs for transfer_
    // Set to null by the destructor: a job's completion then finds no session.
    std::shared_ptr<Session*> self_ = std::make_shared<Session*>(this);
    bool backlogged_ = false;  // input paused until the client has read our output down to kBacklogLow
    size_t pending_at_timeout_ = 0;  // unsent output when the idle timer last fired
    uint64_t retrieved_ = 0, deleted_ = 0;
};

}  // namespace ferry::pop3
