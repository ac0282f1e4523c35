// LMTP client (RFC 2033): one transaction per message over mda_socket, one reply per recipient.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/event/stream.hpp"

namespace ferry::qmgr {

// A reply as the server gave it; code 0 means no reply for this recipient (connection refused,
// lost or timed out, greeting refused): `text` then says why, and the recipient is deferred.
struct LmtpReply {
    int code = 0;
    std::string text;  // "250 2.1.5 Ok", continuation lines joined by a space
    bool ok() const { return code >= 200 && code < 300; }
    bool permanent() const { return code >= 500 && code < 600; }
};

// Reads one reply line by line: "ddd-text" continues, "ddd text" or "ddd" ends it (RFC 5321 4.2).
class ReplyReader {
public:
    enum class Status { more, done, error };
    static constexpr size_t kMaxLines = 100;      // lines of one multi-line reply
    static constexpr size_t kMaxLine = 4096;      // bytes of one reply line, CRLF excluded

    Status feed(std::string_view line);
    // The finished reply; the reader starts over for the next one.
    LmtpReply take();
    const std::string& error() const { return error_; }

private:
    LmtpReply reply_;
    size_t lines_ = 0;
    std::string error_;
};

// The DATA payload from a spool message (LF line ends): CRLF line ends, dot-stuffed (RFC 5321
// 4.5.2), a last line end added when missing, and the final ".\r\n".
std::string lmtp_data(std::string_view lf_data);

struct LmtpJob {
    std::string id;                       // queue id, for log lines
    std::string sender;                   // empty for the null sender <>
    std::vector<std::string> recipients;
    std::string data;                     // LF line ends, as in the spool
};

class LmtpClient final : public Stream::Handler {
public:
    class Owner {
    public:
        virtual ~Owner() = default;
        // Exactly once: one reply per recipient of the job, in its order.
        virtual void lmtp_result(LmtpClient& client, std::vector<LmtpReply> replies) = 0;
        // After lmtp_result; the owner may destroy the client here.
        virtual void lmtp_closed(LmtpClient& client) = 0;
    };

    // Connects without blocking (a full backlog is an error, not a wait) and starts the dialogue.
    static Result<std::unique_ptr<LmtpClient>> start(event_base* base, const std::string& socket_path,
                                                     const std::string& helo_name, double timeout,
                                                     LmtpJob job, Owner* owner);
    ~LmtpClient() override;

    const LmtpJob& job() const { return job_; }

    void on_input(Stream& stream) override;
    void on_close(Stream& stream, const std::string& reason) override;
    void on_timeout(Stream& stream) override;

private:
    enum class Phase { greeting, lhlo, mail, rcpt, data, dot, quit };

    LmtpClient(LmtpJob job, std::string helo, Owner* owner);
    void handle(const LmtpReply& reply);
    void next_rcpt_or_data();
    void fail_unanswered(int code, const std::string& text);
    void give_up(int code, const std::string& text);
    void quit();
    void report();

    LmtpJob job_;
    std::string helo_;
    Owner* owner_;
    std::unique_ptr<Stream> stream_;
    ReplyReader reader_;
    Phase phase_ = Phase::greeting;
    std::vector<LmtpReply> replies_;   // one per recipient; code 0 until answered
    std::vector<size_t> accepted_;     // recipients whose RCPT got 2xx, in order
    size_t rcpt_next_ = 0;             // next RCPT to send
    size_t dot_next_ = 0;              // next accepted recipient whose DATA reply is due
    bool reported_ = false;
    std::string why_;                  // why the connection ended early
};

}  // namespace ferry::qmgr
