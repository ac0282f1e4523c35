// One LMTP session (RFC 2033): LHLO, MAIL, RCPT, DATA with one reply per recipient, RSET, NOOP, QUIT.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/auth/accounts.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "common/event/stream.hpp"

namespace ferry::mda {

class LmtpServer;

class LmtpSession final : public Stream::Handler {
public:
    LmtpSession(LmtpServer& server, event_base* base, Fd fd, uint64_t id);
    uint64_t id() const { return id_; }

    void on_input(Stream& stream) override;
    void on_close(Stream& stream, const std::string& reason) override;
    void on_timeout(Stream& stream) override;

private:
    // Command table entry: check() returns the refusal, if any; proceed() only acts (smtp_session.c's split).
    struct CommandDef {
        const char* verb;
        std::optional<Error> (LmtpSession::*check)(const smtp::Command&) const;
        void (LmtpSession::*proceed)(const smtp::Command&);
    };
    static const CommandDef kCommands[];

    struct Recipient {
        std::string address;  // as the account database spells it
        Account account;
    };

    bool step_command(std::string_view input);
    bool step_data(std::string_view input);
    void handle_command(std::string_view line);

    std::optional<Error> check_lhlo(const smtp::Command&) const;
    std::optional<Error> check_mail(const smtp::Command&) const;
    std::optional<Error> check_rcpt(const smtp::Command&) const;
    std::optional<Error> check_data(const smtp::Command&) const;
    std::optional<Error> check_none(const smtp::Command&) const;
    void do_lhlo(const smtp::Command&);
    void do_mail(const smtp::Command&);
    void do_rcpt(const smtp::Command&);
    void do_data(const smtp::Command&);
    void do_rset(const smtp::Command&);
    void do_noop(const smtp::Command&);
    void do_quit(const smtp::Command&);

    // After the final dot: deliver to every recipient, then reply once per recipient in RCPT order.
    void finish_data();
    std::vector<Result<std::string>> deliver_all(const std::string& qid);
    void reset_transaction();
    void send(const std::string& reply);

    LmtpServer& server_;
    uint64_t id_;
    std::unique_ptr<Stream> stream_;
    smtp::LineReader lines_;
    bool greeted_ = false;                 // LHLO seen
    std::optional<std::string> sender_;    // set by MAIL; "" is the null reverse-path
    std::vector<Recipient> recipients_;    // accepted RCPTs, in order
    std::optional<smtp::DataReader> data_; // while reading the message
    std::string message_;                  // the message with LF line ends
};

}  // namespace ferry::mda
