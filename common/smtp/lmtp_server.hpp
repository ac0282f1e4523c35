// The LMTP server's protocol half (RFC 2033): one session's state machine, delivering to an LmtpBackend.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/command_table.hpp"
#include "common/base/result.hpp"
#include "common/event/line_framer.hpp"
#include "common/event/stream.hpp"
#include "common/smtp/smtp_proto.hpp"

namespace ferry::smtp {

// What an LMTP session delivers to: ferry-mda's Maildirs, later ferry-relay's queue. One backend
// per session, told about one transaction at a time; its calls are made from the event loop.
class LmtpBackend {
public:
    // One accepted recipient's reply: a value is the text of "250 2.0.0 <text>", an error its own
    // reply. A durable copy (made now or by an earlier transaction) is the only reason for a value.
    using Reply = Result<std::string>;
    // Called once per accepted recipient, in RCPT order (RFC 2033 4.2), each as soon as that
    // recipient's outcome is known: the session writes each reply at once.
    using ReplyFn = std::function<void(Reply)>;

    virtual ~LmtpBackend() = default;
    // MAIL FROM: a transaction starts; "" is the null reverse-path.
    virtual void begin(std::string_view sender) = 0;
    // RCPT TO: nullopt when accepted, else the refusal (550 5.1.1, 451 4.3.0...).
    virtual std::optional<Error> recipient(std::string_view address) = 0;
    // The same with the ESMTP parameters of the command (smtp_proto.hpp): the session calls these.
    // MailParams: size, body (BODY=7BIT|8BITMIME), smtputf8, ret (RET=FULL|HDRS), envid (ENVID,
    // decoded); RcptParams: notify (dsn::notify bits, 0 when absent), orcpt (ORCPT, decoded).
    // A backend that passes mail on (ferry-relay) overrides them; by default the parameters are
    // dropped and begin()/recipient() called (ferry-mda).
    virtual void mail(std::string_view sender, const MailParams&) { begin(sender); }
    virtual std::optional<Error> rcpt(std::string_view address, const RcptParams&) { return recipient(address); }
    // After 354: the message follows, with LF line ends, in chunks as it arrives.
    virtual void data_start() = 0;
    virtual void data(std::string_view chunk) = 0;
    // The final dot. `refused` (size, line length, bare LF) is every recipient's reply and nothing
    // may be delivered. Otherwise `reply` is called once per accepted recipient, in RCPT order, now
    // or later, never after the backend is destroyed; the last call ends the transaction (reset()
    // may come from inside it). The session reads no command until then.
    virtual void end_of_data(const std::optional<Error>& refused, ReplyFn reply) = 0;
    // The transaction is over (replied, RSET, LHLO, or the session ends): forget it.
    virtual void reset() = 0;
    // A private command (RFC 5321 4.1.5: a verb starting with "X") the session does not know. A
    // backend that serves it returns true and calls `answer` once, now or later, with the whole
    // reply (CRLF line ends); the session reads no command until then. By default none is served (500).
    using AnswerFn = std::function<void(std::string)>;
    virtual bool private_command(std::string_view line, AnswerFn answer) {
        (void)line;
        (void)answer;
        return false;
    }
};

// What a session needs from the configuration, taken once.
struct LmtpSessionSettings {
    std::string hostname;
    std::string greeting = "LMTP ready";  // after the host name in the 220 greeting
    double timeout = 600;
    size_t max_recipients = 1000;
    uint64_t message_size_limit = 10240000;
    bool smtputf8 = true;  // LHLO offers SMTPUTF8 (RFC 6531): UTF-8 addresses with MAIL ... SMTPUTF8
    bool dsn = true;       // LHLO offers DSN (RFC 3461): the client passes NOTIFY, ORCPT, RET, ENVID
    Limits limits;
    DataLimits data_limits;
};

class LmtpSession final : public Stream::Handler {
public:
    class Owner {
    public:
        virtual ~Owner() = default;
        // From on_close: the owner destroys the session here.
        virtual void session_closed(LmtpSession* session) = 0;
    };

    LmtpSession(event_base* base, Fd fd, std::string id, const LmtpSessionSettings& settings,
                std::unique_ptr<LmtpBackend> backend, Owner& owner);
    ~LmtpSession() override;
    // Starts every log line of the session, as smtpd's and popd's session ids do.
    const std::string& id() const { return id_; }

    void on_input(Stream& stream) noexcept override;
    void on_close(Stream& stream, const std::string& reason) noexcept override;
    void on_timeout(Stream& stream) noexcept override;

private:
    // Command table entry: check() returns the refusal, if any; proceed() only acts (smtp_session.c's split).
    using CommandDef = CommandSpec<std::string_view, Result<void> (LmtpSession::*)(const Command&) const,
                                   void (LmtpSession::*)(const Command&)>;
    static const CommandDef kCommands[];

    void consume(Stream& stream);
    void uncork();
    bool step_command();
    bool step_data(std::string_view input);
    void handle_command(std::string_view line);
    bool serve_private(std::string_view line);

    Result<void> check_mail(const Command&) const;
    Result<void> check_rcpt(const Command&) const;
    Result<void> check_data(const Command&) const;
    void do_lhlo(const Command&);
    void do_mail(const Command&);
    void do_rcpt(const Command&);
    void do_data(const Command&);
    void do_rset(const Command&);
    void do_noop(const Command&);
    void do_quit(const Command&);

    // After the final dot: the backend's replies, one per recipient in RCPT order, each sent as it comes.
    void finish_data();
    void send_data_reply(LmtpBackend::Reply r);
    void reset_transaction();
    void send(const std::string& reply);

    std::string id_;
    const LmtpSessionSettings& settings_;
    std::unique_ptr<LmtpBackend> backend_;
    Owner& owner_;
    std::unique_ptr<Stream> stream_;
    LineFramer lines_;
    bool greeted_ = false;                 // LHLO seen
    bool in_transaction_ = false;          // MAIL accepted
    bool smtputf8_ = false;                // MAIL had SMTPUTF8
    std::vector<std::string> recipients_;  // accepted RCPTs, in order
    std::optional<DataReader> data_;       // while reading the message
    std::string data_out_;                 // the reader's output for one piece of input
    bool waiting_ = false;                 // for the backend's replies
    size_t replied_ = 0;                   // of recipients_, while waiting_
    std::shared_ptr<bool> alive_;          // false once destroyed, for a late `done`
    bool corked_ = false;                  // in on_input: replies wait in held_
    std::string held_;
};

}  // namespace ferry::smtp
