// One SMTP session (RFC 5321): reads pipelined commands and DATA from its Stream, replies in order.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/auth/auth.hpp"
#include "common/base/fd.hpp"
#include "common/base/result.hpp"
#include "common/auth/sasl.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "common/event/deadline.hpp"
#include "common/event/session_set.hpp"
#include "common/event/line_framer.hpp"
#include "common/event/stream.hpp"
#include "mta/smtpd/incoming.hpp"
#include "mta/smtpd/server.hpp"
#include "mta/smtpd/spf_check.hpp"

namespace ferry::smtpd {

// The mail transaction between MAIL and the end of DATA or BDAT LAST (or RSET).
struct Transaction {
    bool active = false;
    std::string sender;                   // "" for the null reverse-path
    std::vector<std::string> recipients;  // as the policy accepted them
    smtp::MailParams params;              // MAIL's parameters (SMTPUTF8, BODY, RET, ENVID)
    std::vector<smtp::RcptParams> rcpt_params;  // NOTIFY, ORCPT; one per recipient
    bool bdat = false;                    // a BDAT chunk came: DATA is out of sequence (RFC 3030 2)
    std::optional<verify::spf::Verdict> spf;  // the SPF check's verdict, when one ran
};

class Session final : public Stream::Handler, public ServedSession {
public:
    // Greets at once, or on smtps after the TLS handshake (RFC 8314 3.3). `id` starts every log line.
    Session(Server& server, Fd fd, ListenerKind kind, std::string id);
    ~Session() override;

    void on_input(Stream& stream) noexcept override;
    void on_close(Stream& stream, const std::string& reason) noexcept override;
    void on_timeout(Stream& stream) noexcept override;
    void on_lifetime_expired() override;
    void on_stop() override;

    // For the command table (commands.cpp): state it checks and the steps it takes.
    Server& server() { return server_; }
    const Settings& settings() const { return server_.settings(); }
    const std::string& client() const { return stream_.peer(); }
    const std::string& id() const { return id_; }
    ListenerKind kind() const { return kind_; }
    bool greeted() const { return !helo_.empty(); }
    bool authenticated() const { return !auth_user_.empty(); }
    // Logged in, or connected from smtpd_relay_networks.
    bool may_relay() const;
    const std::string& auth_user() const { return auth_user_; }
    bool esmtp() const { return esmtp_; }
    bool tls_active() const { return stream_.is_tls(); }
    // May a password travel on this connection now (plaintext_auth, TLS, loopback peer)?
    bool plaintext_auth_ok() const;
    Transaction& transaction() { return tx_; }

    // Queues a reply; replies go out in order, batched per read (RFC 2920 pipelining).
    void reply(int code, std::string_view enhanced, std::string_view text);
    void reply_lines(int code, const std::vector<std::string>& lines);
    // An error reply: logged as a reject, then refused.
    void reject(const Error& error, const std::string& verb);
    // An error reply counted towards smtpd_max_errors (421 and close when reached).
    void refuse(const Error& error);
    void set_helo(const std::string& helo, bool esmtp);
    // MAIL accepted: runs the SPF check where it applies (input paused), then answers 250 or, for a
    // fail under smtpd_spf_policy = reject_fail, 550 5.7.23.
    void begin_mail();
    void reset_transaction();
    // DATA accepted: opens the spool file, writes the Received: header, answers 354.
    void begin_data();
    // BDAT accepted (RFC 3030): the first chunk of a transaction opens the spool file as DATA
    // does; the chunk's bytes follow, then 250 (or, after LAST, the commit and its reply).
    void begin_chunk(const smtp::Bdat& bdat);
    // BDAT refused: its chunk is read and dropped so the next command is found where it starts.
    void skip_chunk(uint64_t size);
    void quit();
    // STARTTLS accepted: answers 220, drops whatever the client pipelined, starts the handshake.
    void start_tls();
    // AUTH accepted: runs the SASL exchange, then the password check with input paused.
    void start_auth(sasl::Mechanism mech, std::optional<std::string_view> initial_response);

    static constexpr size_t kMaxUnreadReplies = 1 << 20;
    // RFC 4954 4: client responses of at least 12288 octets must be accepted.
    static constexpr size_t kMaxAuthLine = 12288;

private:
    // handshake: TLS negotiating (no input). auth: a 334 challenge is out, the next line is the
    // client's response. checking: a password check runs (input paused).
    // chunk: reading the bytes of a BDAT chunk (chunk_left_ more of them). inspecting: the whole
    // message goes through the server's checks (input paused). committing: the message is in the
    // server's commit stage (input paused; pipelined commands wait for its reply).
    enum class Phase { handshake, command, auth, checking, data, chunk, inspecting, committing, done };

    // What the log line of a committed message says, kept apart from the session, which may be gone by then.
    struct Committing {
        std::string session;  // id_
        std::string id;       // the queue id at the end of DATA
        std::string from;
        std::string client;
        std::string auth;     // " auth=<user>" or ""
        uint64_t size = 0;
        size_t nrcpt = 0;
    };

    bool read_command();
    bool read_auth_line();
    bool read_data();
    bool read_chunk();
    void end_chunk();
    bool open_incoming(smtp::DataReader::Framing framing, const std::string& verb);
    void handle_line(std::string_view line);
    void finish_data();
    // Runs the server's checks one after the other, then commits with the fields they added; a
    // refusal discards the message. No checks: straight to commit().
    void inspect(spool::Writer writer, Committing what, const Transaction& tx);
    void run_check(size_t k);
    void on_check(size_t k, Finding f);
    void commit(spool::Writer writer, Committing what);
    // On the loop once the commit stage is done with a message: the log line and qmgr's notice
    // stand whether or not `session` is still there; the reply goes only to a live, waiting session.
    static void on_committed(Server& server, const std::weak_ptr<Session*>& session, spool::Writer& writer,
                             const Committing& what, Result<void> r);
    // The commit's reply is out: pipelined commands that waited are read again.
    void end_commit();
    void flush();
    void greet();
    void begin_handshake(const char* how);
    void on_tls_done(const Result<void>& r, const char* how);
    void auth_step(sasl::Step step);
    void check_password(const std::string& user, const std::string& password,
                        std::shared_ptr<const sasl::ScramServer> scram = {});  // SCRAM-SHA-256 when set
    void on_auth_result(const AuthResult& r);
    bool spf_applies() const;
    void on_spf(verify::spf::Verdict v);
    bool reading() const {
        return phase_ == Phase::command || phase_ == Phase::auth || phase_ == Phase::data || phase_ == Phase::chunk;
    }
    void track_command_deadline();
    void on_deadline();
    void hang_up(int code, std::string_view enhanced, const std::string& text, const std::string& reason);

    Server& server_;
    ListenerKind kind_;
    std::string id_;
    Stream stream_;
    // A command line or a message that must be complete within smtpd_timeout, extended by
    // smtpd_min_data_rate: the idle timer alone lets one byte a second hold a session forever.
    RequestDeadline deadline_;
    LineFramer lines_;
    LineFramer auth_lines_;  // SASL responses, which may be longer than commands
    smtp::Limits limits_;
    Phase phase_ = Phase::command;
    std::string helo_;
    bool esmtp_ = false;
    std::string auth_user_;  // the account that logged in with AUTH (normalized address)
    std::optional<sasl::Exchange> exchange_;
    std::string auth_mech_;  // "PLAIN" / "LOGIN", for the log line
    AuthTicket ticket_;      // the pending password check; dropping it cancels the callback
    std::unique_ptr<SpfRun> spf_;  // the pending SPF check; dropping it cancels the callback
    Transaction tx_;
    std::optional<Incoming> incoming_;
    // While inspecting: the message, what its log line says, the check that runs and what the
    // checks found so far. Closing the session drops them: a message not yet answered is not accepted.
    struct Inspection {
        std::optional<spool::Writer> writer;
        Committing what;
        std::shared_ptr<CheckedMessage> message;
        std::unique_ptr<CheckRun> run;
        std::string fields;
    };
    std::unique_ptr<Inspection> inspection_;
    uint64_t chunk_left_ = 0;  // bytes of the current BDAT chunk still to read
    uint64_t chunk_size_ = 0;  // its size, for the reply
    bool chunk_last_ = false;  // it is the LAST one
    bool chunk_keep_ = false;  // its bytes go into incoming_ (false: a refused BDAT, dropped)
    std::string out_;        // replies not yet handed to the stream
    std::string last_verb_ = "CONNECT";
    std::string close_reason_;
    int errors_ = 0;
    bool stopping_ = false;  // the server stops: close once the current message is done
    // Points at this session until it closes: a commit that ends later finds it through a weak_ptr,
    // and never touches a session that was released.
    std::shared_ptr<Session*> token_ = std::make_shared<Session*>(this);
};

}  // namespace ferry::smtpd
