// LMTP client (RFC 2033): one transaction per message over mda_socket, one reply per recipient; the connection may carry the next.
#include "mta/qmgr/lmtp_client.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "common/base/log.hpp"
#include "common/event/net.hpp"

namespace ferry::qmgr {

namespace {

constexpr size_t kChunk = 65536;       // bytes of the queue file read at a time
constexpr size_t kLowWater = 65536;    // more of the message is read once the socket took this much

std::string address_arg(const std::string& a) { return "<" + a + ">"; }

bool keyword_is(const std::string& line, std::string_view keyword) {
    std::string_view w = std::string_view(line).substr(0, line.find(' '));
    if (w.size() != keyword.size()) return false;
    for (size_t i = 0; i < w.size(); ++i)
        if (std::toupper(static_cast<unsigned char>(w[i])) != keyword[i]) return false;
    return true;
}

}  // namespace

smtp::MailParams mail_params(const spool::Envelope& env) {
    smtp::MailParams p;
    p.smtputf8 = env.smtputf8;
    if (env.body == "8BITMIME") p.body = smtp::MailParams::Body::eight_bit_mime;
    else if (env.body == "7BIT") p.body = smtp::MailParams::Body::seven_bit;
    if (env.ret == "FULL") p.ret = dsn::Ret::full;
    else if (env.ret == "HDRS") p.ret = dsn::Ret::hdrs;
    if (!env.envid.empty()) p.envid = dsn::parse_envid(env.envid);
    return p;
}

smtp::RcptParams rcpt_params(const spool::Envelope& env, size_t index) {
    smtp::RcptParams p;
    spool::RcptDsn d = env.dsn_of(index);
    if (auto bits = dsn::parse_notify(d.notify); bits && !d.notify.empty()) p.notify = *bits;
    if (!d.orcpt.empty()) p.orcpt = dsn::parse_orcpt(d.orcpt);
    return p;
}

LmtpOffers lmtp_offers(const smtp::Reply& lhlo) {
    LmtpOffers o;
    for (size_t i = 1; i < lhlo.lines.size(); ++i) {  // the first line is the server's name
        o.dsn |= keyword_is(lhlo.lines[i], "DSN");
        o.smtputf8 |= keyword_is(lhlo.lines[i], "SMTPUTF8");
        o.eight_bit_mime |= keyword_is(lhlo.lines[i], "8BITMIME");
        o.pipelining |= keyword_is(lhlo.lines[i], "PIPELINING");
    }
    return o;
}

std::string mail_args(const smtp::MailParams& p, const LmtpOffers& offers) {
    std::string out;
    if (offers.eight_bit_mime && p.body == smtp::MailParams::Body::eight_bit_mime) out += " BODY=8BITMIME";
    if (offers.smtputf8 && p.smtputf8) out += " SMTPUTF8";
    if (offers.dsn && p.ret != dsn::Ret::unspecified) out += p.ret == dsn::Ret::full ? " RET=FULL" : " RET=HDRS";
    if (offers.dsn && p.envid) out += " ENVID=" + dsn::xtext_encode(*p.envid);
    return out;
}

std::string rcpt_args(const smtp::RcptParams& p, const LmtpOffers& offers) {
    if (!offers.dsn) return "";
    std::string out;
    if (p.notify) out += " NOTIFY=" + dsn::notify_text(p.notify);
    if (p.orcpt) out += " ORCPT=" + dsn::orcpt_text(*p.orcpt);
    return out;
}

LmtpClient::LmtpClient(LmtpJob job, std::string helo, Owner* owner)
    : job_(std::move(job)), helo_(std::move(helo)), owner_(owner), answered_(job_.recipients.size(), false) {}

LmtpClient::~LmtpClient() = default;

Result<std::unique_ptr<LmtpClient>> LmtpClient::start(event_base* base, const std::string& socket_path,
                                                      const std::string& helo_name, double timeout, LmtpJob job,
                                                      Owner* owner) {
    std::unique_ptr<LmtpClient> c(new LmtpClient(std::move(job), helo_name, owner));
    c->base_ = base;
    c->socket_path_ = socket_path;
    c->timeout_ = timeout;
    if (auto r = c->connect(); !r) return r.error();
    auto on_finished = [](evutil_socket_t, short, void* arg) noexcept {
        auto* self = static_cast<LmtpClient*>(arg);
        if (self->reusable()) self->owner_->lmtp_closed(*self);
    };
    c->finished_ev_.reset(event_new(base, -1, 0, on_finished, c.get()));
    return c;
}

Result<void> LmtpClient::connect() {
    auto fd = net::connect_unix(socket_path_, net::Blocking::no);
    if (!fd) return fd.error();
    stream_ = std::make_unique<Stream>(base_, std::move(fd.value()), this);
    stream_->set_idle_timeout(timeout_);
    stream_->set_output_low_water(kLowWater);
    reader_ = smtp::ReplyReader();
    phase_ = Phase::greeting;
    return {};
}

void LmtpClient::park(double idle_seconds) {
    if (reusable()) stream_->set_idle_timeout(idle_seconds);
}

void LmtpClient::reuse(LmtpJob job, double timeout) {
    job_ = std::move(job);
    timeout_ = timeout;
    encoder_ = mail::WireEncoder();
    data_sent_ = 0;
    sending_ = dot_sent_ = false;
    answered_.assign(job_.recipients.size(), false);
    accepted_.clear();
    rcpt_next_ = dot_next_ = 0;
    why_.clear();
    retry_on_close_ = true;
    stream_->set_idle_timeout(timeout_);
    start_mail();
}

// With PIPELINING (RFC 2920; every LMTP server has it, RFC 2033 4.1) MAIL, the RCPTs and DATA go
// out in one write and their replies are read in order; else one command per reply.
void LmtpClient::start_mail() {
    std::string out = "MAIL FROM:" + address_arg(job_.sender) + mail_args(job_.mail, offers_) + "\r\n";
    if (offers_.pipelining) {
        for (size_t i = 0; i < job_.recipients.size(); ++i) out += rcpt_command(i);
        out += "DATA\r\n";
    }
    stream_->write(out);
    phase_ = Phase::mail;
}

std::string LmtpClient::rcpt_command(size_t i) const {
    std::string args = i < job_.rcpt_params.size() ? rcpt_args(job_.rcpt_params[i], offers_) : "";
    return "RCPT TO:" + address_arg(job_.recipients[i]) + args + "\r\n";
}

void LmtpClient::on_input(Stream& stream) noexcept {
    evbuffer* in = stream.input();
    while (!stream.closing()) {
        size_t len = evbuffer_get_length(in);
        if (len == 0) return;
        len = std::min(len, kChunk);
        auto step = reader_.feed({reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len))), len});
        evbuffer_drain(in, step.consumed);
        if (step.status == smtp::ReplyReader::Status::error) {
            why_ = "protocol error: " + reader_.error();
            stream.abort(why_);
            return;
        }
        if (step.status == smtp::ReplyReader::Status::done) handle(reader_.take());
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
            offers_ = lmtp_offers(reply);
            return start_mail();
        case Phase::mail:
            retry_on_close_ = false;
            // A refused sender is the answer for every recipient: 5xx bounces them, 4xx defers them.
            if (!reply.ok()) return give_up(reply.code, reply.text);
            phase_ = Phase::rcpt;
            return next_rcpt_or_data();
        case Phase::rcpt:
            if (reply.ok()) accepted_.push_back(rcpt_next_ - 1);
            else answer(rcpt_next_ - 1, reply, false);
            if (offers_.pipelining) {
                if (rcpt_next_ < job_.recipients.size()) ++rcpt_next_;
                else phase_ = Phase::data;  // DATA went out with them: its reply is next
                return;
            }
            return next_rcpt_or_data();
        case Phase::data:
            // Every RCPT refused (DATA pipelined all the same): done, whatever DATA got.
            if (accepted_.empty()) return quit();
            // 4xx/5xx refuses the message for every accepted recipient. Anything else but 354
            // (a 2xx: the server claims a delivery of a body it never got) is a protocol error:
            // deferred, never taken as delivered.
            if (reply.code >= 400) return give_up(reply.code, reply.text);
            if (reply.code != 354) return give_up(0, "protocol error: DATA answered with " + reply.text);
            phase_ = Phase::dot;
            sending_ = true;
            return pump();
        case Phase::dot:
            // RFC 2033 4.2: one reply per accepted recipient, in RCPT order; none comes before the dot.
            if (sending_) {
                why_ = "protocol error: reply before the end of the data: " + reply.text;
                return stream_->abort(why_);
            }
            answer(accepted_[dot_next_++], reply, true);
            if (dot_next_ == accepted_.size()) finish();
            return;
        case Phase::quit:
            stream_->close("quit");
            return;
        case Phase::idle:
            // Nothing is asked: a reply now is the server going away (421), so the connection goes too.
            stream_->close("unexpected reply while idle: " + reply.text);
            return;
    }
}

void LmtpClient::pump() {
    char buf[kChunk];
    std::string out;
    while (sending_ && !stream_->closing() && stream_->output_pending() <= kLowWater) {
        out.clear();
        if (data_sent_ == job_.data.length) {
            encoder_.finish(out);
            sending_ = false;
            dot_sent_ = true;
        } else {
            auto n = job_.data.read(data_sent_, buf, sizeof buf);
            if (!n) {
                why_ = job_.id + ": " + n.error().what();
                stream_->abort(why_);
                return;
            }
            data_sent_ += *n;
            encoder_.feed({buf, *n}, out);
            // The end of the data goes with its last piece: one send, and one wake-up of the server.
            if (data_sent_ == job_.data.length) {
                encoder_.finish(out);
                sending_ = false;
                dot_sent_ = true;
            }
        }
        stream_->write(out);
    }
}

void LmtpClient::on_output_low(Stream&) noexcept { pump(); }

void LmtpClient::next_rcpt_or_data() {
    if (rcpt_next_ < job_.recipients.size()) {
        size_t i = rcpt_next_++;
        if (!offers_.pipelining) stream_->write(rcpt_command(i));
        return;
    }
    if (accepted_.empty()) return quit();
    stream_->write("DATA\r\n");
    phase_ = Phase::data;
}

void LmtpClient::answer(size_t index, const LmtpReply& reply, bool after_dot) {
    if (answered_[index]) return;
    answered_[index] = true;
    owner_->lmtp_reply(*this, index, reply, after_dot);
}

// Recipients without a reply of their own get this one (code 0: no reply, `text` says why).
void LmtpClient::fail_unanswered(int code, const std::string& text) {
    LmtpReply r;
    r.code = code;
    r.text = text;
    for (size_t i = 0; i < answered_.size(); ++i) answer(i, r, dot_sent_);
}

// A clean end: QUIT, or (reuse allowed) idle, and the owner hears of it from a clean stack.
void LmtpClient::finish() {
    if (!allow_reuse_) return quit();
    phase_ = Phase::idle;
    event_active(finished_ev_.get(), 0, 0);
}

void LmtpClient::give_up(int code, const std::string& text) {
    fail_unanswered(code, text);
    quit();
}

void LmtpClient::quit() {
    stream_->write("QUIT\r\n");
    phase_ = Phase::quit;
}

void LmtpClient::on_timeout(Stream& stream) noexcept {
    if (phase_ != Phase::quit) why_ = "timeout talking to the delivery agent";
    stream.abort(why_.empty() ? "timeout" : why_);
}

void LmtpClient::on_close(Stream&, const std::string& reason) noexcept {
    // A reused connection the server had closed while it waited: nothing of this job went through.
    if (retry_on_close_ && !dot_sent_) {
        retry_on_close_ = false;
        accepted_.clear();
        rcpt_next_ = 0;
        if (connect()) return;  // the old stream is destroyed here, which its on_close allows
    }
    if (phase_ == Phase::idle) return owner_->lmtp_closed(*this);
    // After the dot an unanswered recipient may have been delivered: the owner is told so (after_dot).
    fail_unanswered(0, "lost connection to the delivery agent: " + (why_.empty() ? reason : why_));
    owner_->lmtp_closed(*this);
}

}  // namespace ferry::qmgr
