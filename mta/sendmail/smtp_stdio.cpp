// sendmail -bs: a small SMTP server on stdin and stdout, each transaction handed to ferry-qmgr's submit_socket.
#include "mta/sendmail/smtp_stdio.hpp"

#include <unistd.h>

#include <cerrno>
#include <optional>

#include "common/base/fs.hpp"
#include "common/mail/address.hpp"
#include "common/smtp/smtp_proto.hpp"

namespace ferry::sendmail {

namespace {

class StdioSession {
public:
    StdioSession(int in, int out, const SmtpStdioSettings& s, const std::function<smtp::SubmitOutcome(smtp::Submission&)>& submit)
        : in_(in), out_(out), settings_(s), submit_(submit) {}

    void run() {
        send(smtp::reply(220, "", settings_.hostname + " ESMTP ferry-sendmail"));
        while (auto line = read_line()) {
            if (line->size() > settings_.max_command_length) {
                send(smtp::reply(500, "5.5.2", "Line too long"));
                continue;
            }
            if (!command(*line)) return;
        }
    }

private:
    // One line without its CR LF (or LF); nothing at the end of the input.
    std::optional<std::string> read_line() {
        for (;;) {
            size_t nl = buf_.find('\n');
            if (nl != std::string::npos) {
                std::string line = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                if (!line.empty() && line.back() == '\r') line.pop_back();
                return line;
            }
            char chunk[16384];
            ssize_t n = read(in_, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return std::nullopt;
            buf_.append(chunk, static_cast<size_t>(n));
        }
    }

    void send(const std::string& text) { (void)write_all(out_, text.data(), text.size()); }

    // False when the session ends.
    bool command(const std::string& line) {
        smtp::Limits limits;
        limits.max_command_length = settings_.max_command_length;
        auto cmd = smtp::parse_command(line, limits);
        if (!cmd) {
            send(smtp::reply(cmd.error()));
            return true;
        }
        const std::string& v = cmd->verb;
        if (v == "HELO") send(smtp::reply(250, "", settings_.hostname));
        else if (v == "EHLO")
            send(smtp::reply_lines(250, {settings_.hostname, "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES",
                                         "SIZE " + std::to_string(settings_.message_size_limit)}));
        else if (v == "MAIL") mail(*cmd);
        else if (v == "RCPT") rcpt(*cmd);
        else if (v == "DATA") return data();
        else if (v == "RSET") {
            tx_.reset();
            send(smtp::reply(250, "2.0.0", "Ok"));
        } else if (v == "NOOP") send(smtp::reply(250, "2.0.0", "Ok"));
        else if (v == "VRFY") send(smtp::reply(252, "2.5.2", "Send some mail, I'll try my best"));
        else if (v == "QUIT") {
            send(smtp::reply(221, "2.0.0", "Bye"));
            return false;
        } else send(smtp::reply(502, "5.5.1", "Command not implemented"));
        return true;
    }

    void mail(const smtp::Command& cmd) {
        if (tx_) return send(smtp::reply(503, "5.5.1", "Nested MAIL command"));
        uint64_t limit = settings_.message_size_limit;
        if (limit && cmd.params.size && *cmd.params.size > limit)
            return send(smtp::reply(552, "5.3.4", "Message size exceeds fixed limit"));
        tx_.emplace();
        tx_->sender = cmd.path.null ? "" : cmd.path.mailbox();
        send(smtp::reply(250, "2.1.0", "Ok"));
    }

    void rcpt(const smtp::Command& cmd) {
        if (!tx_) return send(smtp::reply(503, "5.5.1", "Need MAIL command"));
        std::string to = cmd.path.mailbox();
        if (!valid_address(to, AddressForm::utf8)) return send(smtp::reply(553, "5.1.3", "Bad recipient address syntax"));
        tx_->recipients.push_back(std::move(to));
        send(smtp::reply(250, "2.1.5", "Ok"));
    }

    // The message up to the lone dot, unstuffed; the transaction's answer is qmgr's.
    bool data() {
        if (!tx_) {
            send(smtp::reply(503, "5.5.1", "Need MAIL command"));
            return true;
        }
        if (tx_->recipients.empty()) {
            send(smtp::reply(554, "5.5.1", "No valid recipients"));
            return true;
        }
        send(smtp::reply(354, "", "End data with <CR><LF>.<CR><LF>"));
        uint64_t size = 0;
        bool ended = false;
        while (auto line = read_line()) {
            if (*line == ".") {
                ended = true;
                break;
            }
            std::string_view l = *line;
            if (!l.empty() && l[0] == '.') l.remove_prefix(1);
            size += l.size() + 2;
            if (!settings_.message_size_limit || size <= settings_.message_size_limit) {
                tx_->message.append(l);
                tx_->message += '\n';
            }
        }
        if (!ended) return false;  // the input ended inside DATA: nothing is sent
        smtp::Submission s = std::move(*tx_);
        tx_.reset();
        if (settings_.message_size_limit && size > settings_.message_size_limit) {
            send(smtp::reply(552, "5.3.4", "Message size exceeds fixed limit"));
            return true;
        }
        smtp::SubmitOutcome o = submit_(s);
        send(o.reply.text.empty() ? smtp::reply(451, "4.3.0", "Temporary failure") : o.reply.text + "\r\n");
        return true;
    }

    int in_, out_;
    const SmtpStdioSettings& settings_;
    const std::function<smtp::SubmitOutcome(smtp::Submission&)>& submit_;
    std::string buf_;
    std::optional<smtp::Submission> tx_;
};

}  // namespace

void run_smtp_stdio(int in, int out, const SmtpStdioSettings& settings,
                    const std::function<smtp::SubmitOutcome(smtp::Submission&)>& submit_one) {
    StdioSession(in, out, settings, submit_one).run();
}

}  // namespace ferry::sendmail
