// One SMTP client connection of ferry-relay: greeting, EHLO, STARTTLS, AUTH, then message transactions.
#include "mta/relay/smtp_client.hpp"

#include <algorithm>

#include "common/auth/sasl.hpp"
#include "common/base/log.hpp"
#include "common/mail/dsn.hpp"

namespace ferry::relay {

namespace {

constexpr size_t kChunk = 65536;     // bytes of the data read at a time, and of a BDAT chunk
constexpr size_t kLowWater = 65536;  // more data is read once the socket took this much

// LF line ends become CRLF (a CRLF stays): the BDAT form of a stored message, without dot-stuffing.
void lf_to_crlf(std::string_view in, std::string& out, bool& last_cr) {
    for (char c : in) {
        if (c == '\n' && !last_cr) out += '\r';
        out += c;
        last_cr = c == '\r';
    }
}

// RFC 3461 4.3, 4.4: RET and ENVID as the sender gave them, for a peer that offers DSN.
std::string dsn_mail_args(const smtp::MailParams& p) {
    std::string out;
    if (p.ret != dsn::Ret::unspecified) out += p.ret == dsn::Ret::full ? " RET=FULL" : " RET=HDRS";
    if (p.envid) out += " ENVID=" + dsn::xtext_encode(*p.envid);
    return out;
}

// RFC 3461 4.1, 4.2: NOTIFY and ORCPT as the sender gave them. No ORCPT is made up when there was
// none: the relay sees the address after alias expansion, not the one the sender used (4.2 allows
// leaving it out).
std::string dsn_rcpt_args(const smtp::RcptParams& p) {
    std::string out;
    if (p.notify) out += " NOTIFY=" + dsn::notify_text(p.notify);
    if (p.orcpt) out += " ORCPT=" + dsn::orcpt_text(*p.orcpt);
    return out;
}

smtp::Reply no_reply(const std::string& why) {
    smtp::Reply r;
    r.text = why;
    return r;
}

}  // namespace

SmtpConnection::SmtpConnection(event_base* base, const RelaySettings& settings, Target target, TlsPolicy policy,
                               std::optional<Credentials> credentials, std::string log_id, Owner* owner)
    : base_(base),
      settings_(settings),
      target_(std::move(target)),
      policy_(policy),
      credentials_(std::move(credentials)),
      log_id_(std::move(log_id)),
      owner_(owner) {
    notify_ev_.reset(event_new(base, -1, 0, on_notify, this));
    connector_ = std::make_unique<Connector>(base, target_.address, target_.port, settings_.timeouts.connect,
                                             [this](Result<Fd> fd) { connected(std::move(fd)); });
}

SmtpConnection::~SmtpConnection() = default;

void SmtpConnection::set_owner(Owner* owner, std::string log_id) {
    owner_ = owner;
    log_id_ = std::move(log_id);
}

std::string SmtpConnection::host_name() const {
    const std::string& h = target_.host;
    return h.size() > 2 && h.front() == '[' && h.back() == ']' ? h.substr(1, h.size() - 2) : h;
}

std::string SmtpConnection::peer_name() const {
    return "host " + host_name() + "[" + target_.address + "]" +
           (target_.port == 25 ? "" : ":" + std::to_string(target_.port));
}

void SmtpConnection::notify(std::function<void()> call) {
    pending_.push_back(std::move(call));
    event_active(notify_ev_.get(), 0, 0);
}

void SmtpConnection::on_notify(evutil_socket_t, short, void* arg) noexcept {
    auto* self = static_cast<SmtpConnection*>(arg);
    if (self->pending_.empty()) return;
    auto call = std::move(self->pending_.front());
    self->pending_.pop_front();
    if (!self->pending_.empty()) event_active(self->notify_ev_.get(), 0, 0);
    call();  // may destroy this connection: nothing after
}

void SmtpConnection::connected(Result<Fd> fd) {
    if (!fd) {
        fail_code_ = 451;
        fail_enhanced_ = "4.4.1";
        fail_why_ = "connect to " + peer_name() + ": " + fd.error().what();
        notify([this] { owner_->smtp_failed(*this, fail_code_, fail_enhanced_, fail_why_); });
        return;
    }
    stream_ = std::make_unique<Stream>(base_, std::move(fd.value()), this);
    stream_->set_output_low_water(kLowWater);
    stream_->set_idle_timeout(settings_.timeouts.greeting);
    phase_ = Phase::greeting;
}

void SmtpConnection::fail_setup(int code, const std::string& enhanced, const std::string& why) {
    if (fail_why_.empty()) {
        fail_code_ = code;
        fail_enhanced_ = enhanced;
        fail_why_ = why;
    }
    close_why_ = why;
    stream_->write("QUIT\r\n");
    stream_->close(why);
}

void SmtpConnection::log_debug(const char* what, const std::string& text) const {
    log::debug("%s: %s %s: %s", log_id_.c_str(), peer_name().c_str(), what, text.c_str());
}

void SmtpConnection::on_input(Stream& stream) noexcept {
    evbuffer* in = stream.input();
    while (!stream.closing()) {
        size_t len = std::min(evbuffer_get_length(in), kChunk);
        if (len == 0) return;
        auto step = reader_.feed({reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len))), len});
        evbuffer_drain(in, step.consumed);
        if (step.status == smtp::ReplyReader::Status::error) {
            close_why_ = "protocol error from " + peer_name() + ": " + reader_.error();
            stream.abort(close_why_);
            return;
        }
        if (step.status == smtp::ReplyReader::Status::done) handle(reader_.take());
    }
}

void SmtpConnection::handle(const smtp::Reply& reply) {
    log_debug("said", reply.text);
    if (phase_ == Phase::transaction) return transaction_reply(reply);
    if (phase_ == Phase::auth) return auth_reply(reply);
    setup_reply(reply);
}

void SmtpConnection::send_ehlo(const char* verb) {
    stream_->write(std::string(verb) + " " + settings_.hostname + "\r\n");
    stream_->set_idle_timeout(settings_.timeouts.mail);
}

void SmtpConnection::setup_reply(const smtp::Reply& reply) {
    switch (phase_) {
        case Phase::greeting:
            if (!reply.ok()) return fail_setup(451, "4.4.2", peer_name() + " refused to talk to me: " + reply.text);
            send_ehlo("EHLO");
            phase_ = Phase::ehlo;
            return;
        case Phase::ehlo:
            if (reply.ok()) {
                caps_ = parse_ehlo(reply);
                return after_ehlo();
            }
            // RFC 5321 4.1.4: a server that does not know EHLO still knows HELO.
            if (reply.permanent() && !tls_) {
                send_ehlo("HELO");
                phase_ = Phase::helo;
                return;
            }
            return fail_setup(451, "4.4.2", peer_name() + " refused EHLO: " + reply.text);
        case Phase::helo:
            if (!reply.ok()) return fail_setup(451, "4.4.2", peer_name() + " refused HELO: " + reply.text);
            caps_ = Capabilities{};
            return after_ehlo();
        case Phase::starttls:
            if (!reply.ok()) {
                if (policy_ == TlsPolicy::encrypt || policy_ == TlsPolicy::verify)
                    return fail_setup(451, "4.7.4", "TLS is required, but " + peer_name() + " refused STARTTLS: " + reply.text);
                caps_.starttls = false;
                return after_ehlo();
            }
            phase_ = Phase::handshake;
            stream_->start_tls(settings_.tls->client(stream_->fd(), host_name(), policy_ == TlsPolicy::verify),
                               [this](Result<void> r) {
                                   if (!r) {
                                       bool required = policy_ == TlsPolicy::encrypt || policy_ == TlsPolicy::verify;
                                       fail_code_ = 451;
                                       fail_enhanced_ = required ? "4.7.5" : "4.4.2";
                                       fail_why_ = "TLS with " + peer_name() + " failed: " + r.error().what();
                                       tls_failed_ = true;
                                       return;  // on_close follows
                                   }
                                   tls_ = true;
                                   reader_ = smtp::ReplyReader();
                                   log::info("%s: %s: TLS established: %s", log_id_.c_str(), peer_name().c_str(),
                                             stream_->tls_description().c_str());
                                   send_ehlo("EHLO");
                                   phase_ = Phase::ehlo;
                               });
            return;
        default:
            // A reply nobody asked for (an idle connection, a second greeting): the peer is confused.
            close_why_ = "protocol error from " + peer_name() + ": unexpected reply: " + reply.text;
            stream_->abort(close_why_);
            return;
    }
}

void SmtpConnection::after_ehlo() {
    bool required = policy_ == TlsPolicy::encrypt || policy_ == TlsPolicy::verify;
    if (!tls_ && policy_ != TlsPolicy::none && settings_.tls && caps_.starttls) {
        stream_->write("STARTTLS\r\n");
        phase_ = Phase::starttls;
        return;
    }
    if (!tls_ && required)
        return fail_setup(451, "4.7.4", "TLS is required, but was not offered by " + peer_name());
    if (credentials_ && !authenticated_ && (caps_.auth_plain || caps_.auth_login)) {
        // A password never goes over a connection in the clear.
        if (tls_) return start_auth();
        log::warnx("%s: %s offers AUTH without TLS: not logging in", log_id_.c_str(), peer_name().c_str());
    }
    phase_ = Phase::ready;
    stream_->set_idle_timeout(0);
    log::info("%s: connected to %s%s", log_id_.c_str(), peer_name().c_str(), tls_ ? " with TLS" : "");
    notify([this] { owner_->smtp_ready(*this); });
}

void SmtpConnection::start_auth() {
    phase_ = Phase::auth;
    expected_.clear();
    if (caps_.auth_plain) {
        std::string token = std::string(1, '\0') + credentials_->user + '\0' + credentials_->password;
        stream_->write("AUTH PLAIN " + sasl::base64_encode(token) + "\r\n");
        expected_.emplace_back(Expect::auth_plain, settings_.timeouts.mail);
    } else {
        stream_->write("AUTH LOGIN\r\n");
        expected_.emplace_back(Expect::login_user, settings_.timeouts.mail);
    }
}

void SmtpConnection::auth_reply(const smtp::Reply& reply) {
    Expect e = expected_.empty() ? Expect::auth_plain : expected_.front().first;
    expected_.clear();
    auto refused = [&] { fail_setup(451, "4.7.0", "authentication with " + peer_name() + " failed: " + reply.text); };
    switch (e) {
        case Expect::login_user:
            if (reply.code != 334) return refused();
            stream_->write(sasl::base64_encode(credentials_->user) + "\r\n");
            expected_.emplace_back(Expect::login_pass, settings_.timeouts.mail);
            return;
        case Expect::login_pass:
            if (reply.code != 334) return refused();
            stream_->write(sasl::base64_encode(credentials_->password) + "\r\n");
            expected_.emplace_back(Expect::login_done, settings_.timeouts.mail);
            return;
        default:
            if (reply.code != 235) return refused();
            authenticated_ = true;
            log::info("%s: %s: logged in as %s", log_id_.c_str(), peer_name().c_str(), credentials_->user.c_str());
            return after_ehlo();
    }
}

std::optional<Error> SmtpConnection::refusal(const OutboundMessage& m) const {
    return peer_refusal(caps_, m, peer_name());
}

void SmtpConnection::transact(const OutboundMessage& m) {
    msg_ = &m;
    result_ = TransactionResult{};
    result_.replies.assign(m.recipients.size(), smtp::Reply{});
    accepted_.clear();
    rcpt_replies_ = 0;
    mail_failed_ = false;
    sending_ = false;
    sent_ = 0;
    wire_ = mail::WireEncoder();
    seven_ = mail::SevenBitEncoder();
    last_cr_ = false;
    ends_with_lf_ = true;
    convert_ = m.eight_bit && !caps_.eightbitmime;
    phase_ = Phase::transaction;
    expected_.clear();
    commands_.clear();
    const Timeouts& t = settings_.timeouts;
    if (messages_ > 0) commands_.push_back({"RSET\r\n", Expect::rset, t.mail});
    std::string mail = "MAIL FROM:<" + m.sender + ">";
    if (caps_.size) mail += " SIZE=" + std::to_string(m.data.length);
    if (m.eight_bit && caps_.eightbitmime) mail += " BODY=8BITMIME";
    if ((m.utf8_envelope || m.params.smtputf8) && caps_.smtputf8) mail += " SMTPUTF8";
    if (caps_.dsn) mail += dsn_mail_args(m.params);
    commands_.push_back({mail + "\r\n", Expect::mail, t.mail});
    for (size_t i = 0; i < m.recipients.size(); ++i) {
        std::string rcpt = "RCPT TO:<" + m.recipients[i] + ">";
        if (caps_.dsn && i < m.rcpt_params.size()) rcpt += dsn_rcpt_args(m.rcpt_params[i]);
        commands_.push_back({rcpt + "\r\n", Expect::rcpt, t.rcpt});
    }
    if (!caps_.chunking) commands_.push_back({"DATA\r\n", Expect::data, t.data});
    if (convert_) log::info("%s: %s has no 8BITMIME: the message is converted to 7 bit", log_id_.c_str(), peer_name().c_str());
    if (caps_.pipelining) {
        // RFC 2920: the whole envelope in one write, the replies read in order.
        std::string batch;
        for (const auto& c : commands_) {
            batch += c.text;
            expected_.emplace_back(c.expect, c.timeout);
        }
        commands_.clear();
        stream_->write(batch);
        stream_->set_idle_timeout(expected_.front().second);
        return;
    }
    send_next_command();
}

void SmtpConnection::send_next_command() {
    if (commands_.empty()) return;
    Command c = std::move(commands_.front());
    commands_.erase(commands_.begin());
    if (c.expect == Expect::data && (mail_failed_ || accepted_.empty())) {
        commands_.clear();
        return;
    }
    stream_->write(c.text);
    expected_.emplace_back(c.expect, c.timeout);
    stream_->set_idle_timeout(c.timeout);
}

void SmtpConnection::transaction_reply(const smtp::Reply& reply) {
    if (expected_.empty()) {
        close_why_ = "protocol error from " + peer_name() + ": unexpected reply: " + reply.text;
        return stream_->abort(close_why_);
    }
    Expect e = expected_.front().first;
    expected_.pop_front();
    const size_t n = msg_->recipients.size();
    switch (e) {
        case Expect::rset:
            if (!reply.ok()) {
                close_why_ = peer_name() + " refused RSET: " + reply.text;
                return stream_->abort(close_why_);
            }
            break;
        case Expect::mail:
            if (!reply.ok()) {
                mail_failed_ = true;
                for (auto& r : result_.replies) r = reply;
                if (!caps_.pipelining) commands_.clear();
            }
            break;
        case Expect::rcpt: {
            size_t i = rcpt_replies_++;
            if (i < n && !mail_failed_) {
                result_.replies[i] = reply;
                if (reply.ok()) accepted_.push_back(i);
            }
            if (rcpt_replies_ == n) after_rcpts();
            break;
        }
        case Expect::data:
            if (reply.code == 354 && (mail_failed_ || accepted_.empty())) {
                // RFC 2920 3.1: a DATA accepted without a recipient gets an empty message.
                stream_->write(".\r\n");
                expected_.emplace_back(Expect::dot, settings_.timeouts.data_done);
                accepted_.clear();
            } else if (reply.code == 354) {
                sending_ = true;
                expected_.emplace_back(Expect::dot, settings_.timeouts.data_done);
                pump();
            } else {
                smtp::Reply r = reply.code >= 400 ? reply : no_reply("protocol error: DATA answered with " + reply.text);
                for (size_t i : accepted_) result_.replies[i] = r;
                accepted_.clear();
            }
            break;
        case Expect::bdat:
            if (!reply.ok()) {
                for (size_t i : accepted_) result_.replies[i] = reply.code >= 400 ? reply : no_reply(reply.text);
                accepted_.clear();
                broken_ = true;  // the peer's state after a refused chunk is not worth a guess
                break;
            }
            send_bdat_chunk();
            break;
        case Expect::dot:
        case Expect::bdat_last:
            for (size_t i : accepted_) result_.replies[i] = reply;
            break;
        default:
            break;
    }
    if (stream_->closing()) return;
    if (!expected_.empty()) {
        stream_->set_idle_timeout(expected_.front().second);
        return;
    }
    if (!commands_.empty()) send_next_command();  // it drops a DATA that no recipient needs
    if (expected_.empty() && commands_.empty() && !sending_) finish_transaction();
}

void SmtpConnection::after_rcpts() {
    if (!caps_.chunking || mail_failed_ || accepted_.empty()) return;
    send_bdat_chunk();
}

// The message in DATA: read while the socket drains, converted to 7 bit when needed, dot-stuffed.
void SmtpConnection::pump() {
    char buf[kChunk];
    std::string out, converted;
    while (sending_ && !stream_->closing() && stream_->output_pending() <= kLowWater) {
        out.clear();
        converted.clear();
        if (sent_ == msg_->data.length) {
            if (convert_ && !seven_.finish(converted)) break;
            wire_.feed(converted, out);
            wire_.finish(out);
            sending_ = false;
            result_.data_sent = true;
            stream_->write(out);
            stream_->set_idle_timeout(settings_.timeouts.data_done);
            return;
        }
        auto n = msg_->data.read(sent_, buf, sizeof buf);
        if (!n) {
            close_why_ = n.error().what();
            return stream_->abort(close_why_);
        }
        sent_ += *n;
        std::string_view chunk(buf, *n);
        if (convert_) {
            if (!seven_.feed(chunk, converted)) break;
            chunk = converted;
        }
        wire_.feed(chunk, out);
        stream_->write(out);
        stream_->set_idle_timeout(settings_.timeouts.data_block);
    }
    if (seven_.failed()) {
        close_why_ = "cannot convert the message to 7 bit: " + seven_.error();
        stream_->abort(close_why_);
    }
}

void SmtpConnection::on_output_low(Stream&) noexcept {
    if (sending_) pump();
}

// RFC 3030: the message in chunks with CRLF line ends, each waiting for its 250.
void SmtpConnection::send_bdat_chunk() {
    char buf[kChunk];
    std::string out, converted;
    bool last = false;
    if (sent_ == msg_->data.length) {
        if (convert_) seven_.finish(converted);
        lf_to_crlf(converted, out, last_cr_);
        last = true;
    } else {
        auto n = msg_->data.read(sent_, buf, sizeof buf);
        if (!n) {
            close_why_ = n.error().what();
            return stream_->abort(close_why_);
        }
        sent_ += *n;
        std::string_view chunk(buf, *n);
        if (convert_) {
            seven_.feed(chunk, converted);
            chunk = converted;
        }
        lf_to_crlf(chunk, out, last_cr_);
        last = sent_ == msg_->data.length && !convert_;
    }
    if (!out.empty()) ends_with_lf_ = out.back() == '\n';
    if (last && !ends_with_lf_) out += "\r\n";
    stream_->write("BDAT " + std::to_string(out.size()) + (last ? " LAST" : "") + "\r\n");
    stream_->write(out);
    expected_.emplace_back(last ? Expect::bdat_last : Expect::bdat, settings_.timeouts.data_done);
    stream_->set_idle_timeout(settings_.timeouts.data_done);
    if (last) result_.data_sent = true;
}

void SmtpConnection::finish_transaction() {
    for (auto& r : result_.replies)
        if (r.code == 0 && r.text.empty()) r = no_reply("no reply from " + peer_name());
    phase_ = broken_ ? Phase::quit : Phase::ready;
    ++messages_;
    msg_ = nullptr;
    stream_->set_idle_timeout(0);
    notify([this, result = std::move(result_)]() mutable { owner_->smtp_done(*this, std::move(result)); });
    if (broken_) quit();
}

void SmtpConnection::quit() {
    if (!stream_) {  // still connecting: stop that, and say so from the loop as a close would
        connector_.reset();
        phase_ = Phase::quit;
        if (fail_why_.empty()) fail_why_ = "closed before it was set up";
        notify([this] { owner_->smtp_failed(*this, 451, "4.4.2", fail_why_); });
        return;
    }
    if (stream_->closing()) return;
    phase_ = Phase::quit;
    stream_->write("QUIT\r\n");
    stream_->close("quit");
}

void SmtpConnection::on_timeout(Stream& stream) noexcept {
    close_why_ = "timeout talking to " + peer_name();
    if (phase_ == Phase::greeting) close_why_ += " (waiting for the greeting)";
    log::info("%s: %s", log_id_.c_str(), close_why_.c_str());
    stream.abort(close_why_);
}

void SmtpConnection::on_close(Stream&, const std::string& reason) noexcept {
    std::string why = close_why_.empty() ? "lost connection with " + peer_name() + ": " + reason : close_why_;
    if (phase_ == Phase::transaction) {
        // An accepted recipient's 250 to RCPT says nothing about the message.
        for (size_t i : accepted_) result_.replies[i] = no_reply(why);
        for (auto& r : result_.replies)
            if (r.code == 0) r = no_reply(why);
        result_.connection_lost = true;
        result_.why = why;
        phase_ = Phase::quit;
        notify([this, result = std::move(result_)]() mutable { owner_->smtp_done(*this, std::move(result)); });
        return;
    }
    if (fail_why_.empty()) {
        fail_code_ = 451;
        fail_enhanced_ = "4.4.2";
        fail_why_ = why;
    }
    phase_ = Phase::quit;
    notify([this] { owner_->smtp_failed(*this, fail_code_, fail_enhanced_, fail_why_); });
}

}  // namespace ferry::relay
