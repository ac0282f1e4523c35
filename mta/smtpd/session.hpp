// One SMTP session (RFC 5321): reads pipelined commands and DATA from its Stream, replies in order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "common/result.hpp"
#include "common/smtp_proto.hpp"
#include "common/stream.hpp"
#include "mta/smtpd/incoming.hpp"
#include "mta/smtpd/server.hpp"

namespace ferry::smtpd {

// The mail transaction between MAIL and the end of DATA (or RSET).
struct Transaction {
    bool active = false;
    std::string sender;                   // "" for the null reverse-path
    std::vector<std::string> recipients;  // as the policy accepted them
};

class Session final : public Stream::Handler {
public:
    Session(Server& server, Fd fd, ListenerKind kind);
    ~Session() override;

    void on_input(Stream& stream) override;
    void on_close(Stream& stream, const std::string& reason) override;
    void on_timeout(Stream& stream) override;

    // For the command table (commands.cpp): state it checks and the steps it takes.
    Server& server() { return server_; }
    const Settings& settings() const { return server_.settings(); }
    const std::string& client() const { return stream_.peer(); }
    ListenerKind kind() const { return kind_; }
    bool greeted() const { return !helo_.empty(); }
    bool authenticated() const { return !auth_user_.empty(); }
    Transaction& transaction() { return tx_; }

    // Queues a reply; replies go out in order, batched per read (RFC 2920 pipelining).
    void reply(int code, std::string_view enhanced, std::string_view text);
    void reply_lines(int code, const std::vector<std::string>& lines);
    // An error reply: logged as a reject, then refused.
    void reject(const Error& error, const std::string& verb);
    // An error reply counted towards smtpd_max_errors (421 and close when reached).
    void refuse(const Error& error);
    void set_helo(const std::string& helo, bool esmtp);
    void reset_transaction();
    // DATA accepted: opens the spool file, writes the Received: header, answers 354.
    void begin_data();
    void quit();

    static constexpr size_t kMaxUnreadReplies = 1 << 20;

private:
    enum class Phase { command, data, done };

    bool read_command();
    bool read_data();
    void handle_line(std::string_view line);
    void finish_data();
    void flush();

    Server& server_;
    ListenerKind kind_;
    Stream stream_;
    smtp::LineReader lines_;
    smtp::Limits limits_;
    Phase phase_ = Phase::command;
    std::string helo_;
    bool esmtp_ = false;
    std::string auth_user_;  // set by AUTH when it comes (common/sasl)
    Transaction tx_;
    std::optional<Incoming> incoming_;
    std::string out_;        // replies not yet handed to the stream
    std::string last_verb_ = "CONNECT";
    std::string close_reason_;
    int errors_ = 0;
};

}  // namespace ferry::smtpd
