// One SMTP client connection of ferry-relay: greeting, EHLO, STARTTLS, AUTH, then message transactions.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/event/stream.hpp"
#include "common/mail/seven_bit.hpp"
#include "common/mail/wire.hpp"
#include "common/smtp/reply.hpp"
#include "mta/relay/capabilities.hpp"
#include "mta/relay/connector.hpp"
#include "mta/relay/message.hpp"
#include "mta/relay/passwords.hpp"
#include "mta/relay/routing.hpp"
#include "mta/relay/settings.hpp"
#include "mta/relay/tls_policy.hpp"

namespace ferry::relay {

// How a transaction ended for its recipients: one reply each, code 0 when there was none (the
// connection was lost or timed out: `why` says so). `data_sent`: the final dot (or BDAT LAST) was
// written, so a recipient without a reply may have been delivered.
struct TransactionResult {
    std::vector<smtp::Reply> replies;
    bool connection_lost = false;
    bool data_sent = false;
    std::string why;
};

class SmtpConnection final : public Stream::Handler {
public:
    // Every call comes from the loop (never from inside a call of ours); the owner may destroy the
    // connection in any of them.
    class Owner {
    public:
        virtual ~Owner() = default;
        // Greeted, EHLO done, TLS and AUTH as the policy wants: ready for transact().
        virtual void smtp_ready(SmtpConnection& c) = 0;
        // The connection could not be set up, or an idle one ended. `code` is the reply to give when
        // no other host is left (4xx; a TLS policy failure 4.7.x), `why` the text.
        virtual void smtp_failed(SmtpConnection& c, int code, const std::string& enhanced, const std::string& why) = 0;
        virtual void smtp_done(SmtpConnection& c, TransactionResult result) = 0;
    };

    SmtpConnection(event_base* base, const RelaySettings& settings, Target target, TlsPolicy policy,
                   std::optional<Credentials> credentials, std::string log_id, Owner* owner);
    ~SmtpConnection() override;

    void set_owner(Owner* owner, std::string log_id);
    const Target& target() const { return target_; }
    const Capabilities& capabilities() const { return caps_; }
    // "host mx.example.org[192.0.2.1]", the way replies and logs name the peer.
    std::string peer_name() const;
    // The host name for SNI and certificate checks: the MX name, or the address of a literal.
    std::string host_name() const;
    bool idle() const { return phase_ == Phase::ready && !broken_; }
    // The STARTTLS handshake failed (the connection then ended).
    bool tls_failed() const { return tls_failed_; }
    TlsPolicy policy() const { return policy_; }
    size_t messages() const { return messages_; }

    // What this peer cannot take of `m`, as the permanent reply every recipient gets: a size above
    // the peer's SIZE (552 5.3.4), a UTF-8 envelope without SMTPUTF8 (553 5.6.7), an 8-bit message
    // without 8BITMIME that cannot be converted (554 5.6.3).
    std::optional<Error> refusal(const OutboundMessage& m) const;
    // Starts a transaction for `m` (which outlives it) on an idle connection; smtp_done follows.
    void transact(const OutboundMessage& m);
    // Ends the connection politely (QUIT); smtp_failed follows once it is closed.
    void quit();

    void on_input(Stream& stream) noexcept override;
    void on_close(Stream& stream, const std::string& reason) noexcept override;
    void on_timeout(Stream& stream) noexcept override;
    void on_output_low(Stream& stream) noexcept override;

private:
    enum class Phase { connecting, greeting, ehlo, helo, starttls, handshake, auth, ready, transaction, quit };
    // What a reply in flight answers, in the order the commands went out (PIPELINING).
    enum class Expect { rset, mail, rcpt, data, dot, bdat, bdat_last, auth_plain, login_user, login_pass, login_done };

    void connected(Result<Fd> fd);
    void handle(const smtp::Reply& reply);
    void setup_reply(const smtp::Reply& reply);
    void transaction_reply(const smtp::Reply& reply);
    void after_ehlo();
    void start_auth();
    void auth_reply(const smtp::Reply& reply);
    void send_ehlo(const char* verb);
    void expect(Expect e, double timeout);
    void send_next_command();
    void after_rcpts();
    void pump();
    void send_bdat_chunk();
    void finish_transaction();
    void fail_setup(int code, const std::string& enhanced, const std::string& why);
    // Owner calls are made from the loop through this event.
    void notify(std::function<void()> call);
    static void on_notify(evutil_socket_t, short, void* arg) noexcept;
    void log_debug(const char* what, const std::string& text) const;

    event_base* base_;
    const RelaySettings& settings_;
    Target target_;
    TlsPolicy policy_;
    std::optional<Credentials> credentials_;
    std::string log_id_;
    Owner* owner_;
    std::unique_ptr<Connector> connector_;
    std::unique_ptr<Stream> stream_;
    smtp::ReplyReader reader_;
    Phase phase_ = Phase::connecting;
    Capabilities caps_;
    bool tls_ = false;
    bool authenticated_ = false;
    size_t messages_ = 0;
    std::string close_why_;  // why we are closing (a timeout, a protocol error)
    int fail_code_ = 0;      // set-up failure: what smtp_failed reports
    std::string fail_enhanced_, fail_why_;
    bool broken_ = false;    // a refused BDAT chunk: the connection is not used again
    bool tls_failed_ = false;
    EventPtr notify_ev_;
    std::deque<std::function<void()>> pending_;

    // The transaction in flight.
    const OutboundMessage* msg_ = nullptr;
    std::deque<std::pair<Expect, double>> expected_;  // replies due, with their timeouts
    struct Command {
        std::string text;
        Expect expect;
        double timeout;
    };
    std::vector<Command> commands_;                   // not yet sent (no PIPELINING)
    TransactionResult result_;
    std::vector<size_t> accepted_;                    // recipients whose RCPT got 2xx
    size_t rcpt_replies_ = 0;
    bool mail_failed_ = false;
    bool sending_ = false;
    bool convert_ = false;                            // to 7 bit on the way (no 8BITMIME)
    uint64_t sent_ = 0;                               // bytes of the data read so far
    mail::WireEncoder wire_;
    mail::SevenBitEncoder seven_;
    bool last_cr_ = false;                            // BDAT: the last byte was a CR
    bool ends_with_lf_ = true;                        // BDAT: the data so far ends a line
};

}  // namespace ferry::relay
