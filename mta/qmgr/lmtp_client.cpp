// LMTP client (RFC 2033): one transaction per message over mda_socket, one reply per recipient.
#include "mta/qmgr/lmtp_client.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>

#include "common/base/log.hpp"
#include "common/event/net.hpp"

namespace ferry::qmgr {

namespace {

bool is_reply_line(std::string_view line) {
    if (line.size() < 3) return false;
    for (size_t i = 0; i < 3; ++i)
        if (!std::isdigit(static_cast<unsigned char>(line[i]))) return false;
    return line[0] >= '2' && line[0] <= '5' && (line.size() == 3 || line[3] == ' ' || line[3] == '-');
}

std::string address_arg(const std::string& a) { return "<" + a + ">"; }

}  // namespace

ReplyReader::Status ReplyReader::feed(std::string_view line) {
    if (line.size() > kMaxLine) {
        error_ = "reply line longer than " + std::to_string(kMaxLine) + " bytes";
        return Status::error;
    }
    if (!is_reply_line(line)) {
        error_ = "malformed reply line \"" + std::string(line.substr(0, 80)) + "\"";
        return Status::error;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (lines_ > 0 && code != reply_.code) {
        error_ = "reply code changed inside a multi-line reply";
        return Status::error;
    }
    if (++lines_ > kMaxLines) {
        error_ = "reply longer than " + std::to_string(kMaxLines) + " lines";
        return Status::error;
    }
    if (lines_ == 1) {
        reply_.code = code;
        reply_.text = std::string(line.substr(0, 3));
    }
    if (line.size() > 4) reply_.text += " " + std::string(line.substr(4));
    return line.size() > 3 && line[3] == '-' ? Status::more : Status::done;
}

LmtpReply ReplyReader::take() {
    lines_ = 0;
    return std::exchange(reply_, LmtpReply{});
}

std::string lmtp_data(std::string_view lf_data) {
    std::string out;
    out.reserve(lf_data.size() + lf_data.size() / 32 + 8);
    bool line_start = true;
    for (char c : lf_data) {
        if (line_start && c == '.') out += '.';
        if (c == '\n') {
            if (out.empty() || out.back() != '\r') out += '\r';
            out += '\n';
            line_start = true;
        } else {
            out += c;
            line_start = false;
        }
    }
    if (!line_start) out += "\r\n";
    out += ".\r\n";
    return out;
}

LmtpClient::LmtpClient(LmtpJob job, std::string helo, Owner* owner)
    : job_(std::move(job)), helo_(std::move(helo)), owner_(owner), replies_(job_.recipients.size()) {}

LmtpClient::~LmtpClient() = default;

Result<std::unique_ptr<LmtpClient>> LmtpClient::start(event_base* base, const std::string& socket_path,
                                                      const std::string& helo_name, double timeout, LmtpJob job,
                                                      Owner* owner) {
    auto fd = net::connect_unix(socket_path, net::Blocking::no);
    if (!fd) return fd.error();
    std::unique_ptr<LmtpClient> c(new LmtpClient(std::move(job), helo_name, owner));
    c->stream_ = std::make_unique<Stream>(base, std::move(fd.value()), c.get());
    c->stream_->set_idle_timeout(timeout);
    return c;
}

void LmtpClient::on_input(Stream& stream) {
    while (!stream.closing()) {
        size_t len = 0;
        char* line = evbuffer_readln(stream.input(), &len, EVBUFFER_EOL_CRLF);
        if (!line) {
            if (evbuffer_get_length(stream.input()) > ReplyReader::kMaxLine) {
                why_ = "reply line longer than " + std::to_string(ReplyReader::kMaxLine) + " bytes";
                stream.abort(why_);
            }
            return;
        }
        std::string text(line, len);
        free(line);
        auto st = reader_.feed(text);
        if (st == ReplyReader::Status::error) {
            why_ = "protocol error: " + reader_.error();
            stream.abort(why_);
            return;
        }
        if (st == ReplyReader::Status::done) handle(reader_.take());
    }
}

void LmtpClient::handle(const LmtpReply& reply) {
    switch (phase_) {
        case Phase::greeting:
            if (!reply.ok()) return give_up(0, "greeting refused: " + reply.text);
            stream_->write("LHLO " + helo_ + "\r\n");
            phase_ = Phase::lhlo;
            return;
        case Phase::lhlo:
            if (!reply.ok()) return give_up(0, "LHLO refused: " + reply.text);
            stream_->write("MAIL FROM:" + address_arg(job_.sender) + "\r\n");
            phase_ = Phase::mail;
            return;
        case Phase::mail:
            // A refused sender is the answer for every recipient: 5xx bounces them, 4xx defers them.
            if (!reply.ok()) return give_up(reply.code, reply.text);
            phase_ = Phase::rcpt;
            return next_rcpt_or_data();
        case Phase::rcpt:
            if (reply.ok()) accepted_.push_back(rcpt_next_ - 1);
            else replies_[rcpt_next_ - 1] = reply;
            return next_rcpt_or_data();
        case Phase::data:
            // 4xx/5xx refuses the message for every accepted recipient. Anything else but 354
            // (a 2xx: the server claims a delivery of a body it never got) is a protocol error:
            // deferred, never taken as delivered.
            if (reply.code >= 400) return give_up(reply.code, reply.text);
            if (reply.code != 354) return give_up(0, "protocol error: DATA answered with " + reply.text);
            stream_->write(lmtp_data(job_.data));
            phase_ = Phase::dot;
            return;
        case Phase::dot:
            // RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
            replies_[accepted_[dot_next_++]] = reply;
            if (dot_next_ == accepted_.size()) quit();
            return;
        case Phase::quit:
            stream_->close("quit");
            return;
    }
}

void LmtpClient::next_rcpt_or_data() {
    if (rcpt_next_ < job_.recipients.size()) {
        stream_->write("RCPT TO:" + address_arg(job_.recipients[rcpt_next_++]) + "\r\n");
        return;
    }
    if (accepted_.empty()) return quit();
    stream_->write("DATA\r\n");
    phase_ = Phase::data;
}

// Recipients without a reply of their own get this one; code 0 defers them.
void LmtpClient::fail_unanswered(int code, const std::string& text) {
    for (auto& r : replies_)
        if (r.code == 0 && r.text.empty()) r = LmtpReply{code, text};
}

void LmtpClient::give_up(int code, const std::string& text) {
    fail_unanswered(code, text);
    quit();
}

void LmtpClient::quit() {
    report();
    stream_->write("QUIT\r\n");
    phase_ = Phase::quit;
}

void LmtpClient::report() {
    if (reported_) return;
    reported_ = true;
    owner_->lmtp_result(*this, std::move(replies_));
}

void LmtpClient::on_timeout(Stream& stream) {
    if (phase_ != Phase::quit) why_ = "timeout talking to the delivery agent";
    stream.abort(why_.empty() ? "timeout" : why_);
}

void LmtpClient::on_close(Stream&, const std::string& reason) {
    if (!reported_) {
        // After the data went out, an unanswered recipient may still have been delivered: deferring
        // it risks one duplicate, never a loss (at-least-once).
        fail_unanswered(0, "lost connection to the delivery agent: " + (why_.empty() ? reason : why_));
        report();
    }
    owner_->lmtp_closed(*this);
}

}  // namespace ferry::qmgr
