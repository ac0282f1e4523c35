// LMTP client (RFC 2033): one transaction per message over mda_socket, one reply per recipient; the connection may carry the next.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/event/event.hpp"
#include "common/event/stream.hpp"
#include "common/mail/wire.hpp"
#include "common/smtp/reply.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "common/spool/spool.hpp"

namespace ferry::qmgr {

// A reply as the server gave it (common/smtp/reply.hpp); code 0 means no reply for this recipient
// (connection refused, lost or timed out, greeting refused): `text` then says why. Whether the
// final dot had been sent says what that means: before it nothing was delivered (a temporary
// failure); after it the recipient may have been delivered (an unknown outcome).
using LmtpReply = smtp::Reply;

struct LmtpJob {
    std::string id;                       // queue id, for log lines
    std::string sender;                   // empty for the null sender <>
    std::vector<std::string> recipients;
    spool::MessageData data;              // LF line ends, as in the spool; read in chunks after 354
    // ESMTP parameters passed on where the server's LHLO offers them: SMTPUTF8, BODY=8BITMIME
    // (8BITMIME), RET and ENVID (DSN); per recipient NOTIFY and ORCPT (DSN). rcpt_params is empty
    // or parallel to recipients.
    smtp::MailParams mail;
    std::vector<smtp::RcptParams> rcpt_params;
};

// The parameters the queue file `env` recorded: MAIL's, and those of its recipient `index`.
smtp::MailParams mail_params(const spool::Envelope& env);
smtp::RcptParams rcpt_params(const spool::Envelope& env, size_t index);

// What the server's LHLO reply offers of the extensions the client may use.
struct LmtpOffers {
    bool dsn = false;
    bool smtputf8 = false;
    bool eight_bit_mime = false;
    bool pipelining = false;
};
LmtpOffers lmtp_offers(const smtp::Reply& lhlo);
// " BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=..." (with a leading space) or "" as `offers` allow.
std::string mail_args(const smtp::MailParams& params, const LmtpOffers& offers);
std::string rcpt_args(const smtp::RcptParams& params, const LmtpOffers& offers);

class LmtpClient final : public Stream::Handler {
public:
    class Owner {
    public:
        virtual ~Owner() = default;
        // Exactly once per recipient of the job (`index` into job().recipients), as its outcome is
        // known: a refused RCPT at once, the replies after the data in RCPT order as they come.
        // `after_dot`: the final dot of the data had been sent. Must not destroy the client.
        virtual void lmtp_reply(LmtpClient& client, size_t index, const LmtpReply& reply, bool after_dot) = 0;
        // After every lmtp_reply; the owner may destroy the client here, or keep it for the next
        // job when reusable(). Also when an idle client's connection ends.
        virtual void lmtp_closed(LmtpClient& client) = 0;
    };

    // Connects without blocking (a full backlog is an error, not a wait) and starts the dialogue.
    static Result<std::unique_ptr<LmtpClient>> start(event_base* base, const std::string& socket_path,
                                                     const std::string& helo_name, double timeout,
                                                     LmtpJob job, Owner* owner);
    ~LmtpClient() override;

    const LmtpJob& job() const { return job_; }
    // The transaction ended cleanly and the connection is open: reuse() may start the next one.
    bool reusable() const { return phase_ == Phase::idle && !stream_->closing(); }
    // Instead of QUIT after a clean transaction, the client goes idle and tells the owner
    // (lmtp_closed, on a later turn of the loop), who may keep it for reuse() or destroy it.
    void allow_reuse() { allow_reuse_ = true; }
    // While reusable(): waits at most `idle_seconds` for the next job, then closes (lmtp_closed).
    void park(double idle_seconds);
    // Starts `job` on this connection (no greeting or LHLO again). Should the server have closed the
    // connection meanwhile, before it answered MAIL, the job starts over once on a new connection.
    void reuse(LmtpJob job, double timeout);

    void on_input(Stream& stream) noexcept override;
    void on_close(Stream& stream, const std::string& reason) noexcept override;
    void on_timeout(Stream& stream) noexcept override;
    void on_output_low(Stream& stream) noexcept override;

private:
    enum class Phase { greeting, lhlo, mail, rcpt, data, dot, quit, idle };

    LmtpClient(LmtpJob job, std::string helo, Owner* owner);
    Result<void> connect();
    void start_mail();
    std::string rcpt_command(size_t i) const;
    void handle(const LmtpReply& reply);
    void next_rcpt_or_data();
    void fail_unanswered(int code, const std::string& text);
    void give_up(int code, const std::string& text);
    void quit();
    void finish();
    // Tells the owner recipient `index`'s outcome, once.
    void answer(size_t index, const LmtpReply& reply, bool after_dot);
    // Sends the message in chunks while the socket drains, then the final dot.
    void pump();

    LmtpJob job_;
    std::string helo_;
    Owner* owner_;
    event_base* base_ = nullptr;
    std::string socket_path_;
    double timeout_ = 0;
    bool allow_reuse_ = false;
    EventPtr finished_ev_;             // tells the owner of a clean end from a clean stack
    bool retry_on_close_ = false;      // reused, and MAIL not answered yet: a close means a stale connection
    std::unique_ptr<Stream> stream_;
    smtp::ReplyReader reader_;
    mail::WireEncoder encoder_;
    uint64_t data_sent_ = 0;           // bytes of job_.data encoded so far
    bool sending_ = false;             // between 354 and the final dot
    bool dot_sent_ = false;            // the final dot was written
    Phase phase_ = Phase::greeting;
    LmtpOffers offers_;                // from the LHLO reply
    std::vector<bool> answered_;       // one per recipient
    std::vector<size_t> accepted_;     // recipients whose RCPT got 2xx, in order
    size_t rcpt_next_ = 0;             // next RCPT to send
    size_t dot_next_ = 0;              // next accepted recipient whose DATA reply is due
    std::string why_;                  // why the connection ended early
};

}  // namespace ferry::qmgr
