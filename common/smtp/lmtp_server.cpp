// The LMTP server's protocol half (RFC 2033): one session's state machine, delivering to an LmtpBackend.
#include "common/smtp/lmtp_server.hpp"

#include <algorithm>
#include <cctype>

#include "common/base/log.hpp"

namespace ferry::smtp {

namespace {

constexpr size_t kWindow = 65536;  // input bytes looked at in one step: the message is never held whole

Error bad_sequence(const char* text) { return make_error(503, "5.5.1", text); }

// No verb has a state mask (see kCommands), so the second is never sent.
const DispatchReplies kReplies{make_error(500, "5.5.1", "Command unrecognized"), bad_sequence("Bad sequence of commands")};

std::string first_word(std::string_view line) {
    size_t end = line.find(' ');
    std::string w(line.substr(0, end));
    for (char& c : w) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
    return w;
}

}  // namespace

// Every verb is looked at only between commands, so none needs a state mask: the checks answer
// out-of-sequence commands with texts of their own.
const LmtpSession::CommandDef LmtpSession::kCommands[] = {
    {"LHLO", kAnyState, nullptr, &LmtpSession::do_lhlo},
    {"MAIL", kAnyState, &LmtpSession::check_mail, &LmtpSession::do_mail},
    {"RCPT", kAnyState, &LmtpSession::check_rcpt, &LmtpSession::do_rcpt},
    {"DATA", kAnyState, &LmtpSession::check_data, &LmtpSession::do_data},
    {"RSET", kAnyState, nullptr, &LmtpSession::do_rset},
    {"NOOP", kAnyState, nullptr, &LmtpSession::do_noop},
    {"QUIT", kAnyState, nullptr, &LmtpSession::do_quit},
};

LmtpSession::LmtpSession(event_base* base, Fd fd, std::string id, const LmtpSessionSettings& settings,
                         std::unique_ptr<LmtpBackend> backend, Owner& owner)
    : id_(std::move(id)),
      settings_(settings),
      backend_(std::move(backend)),
      owner_(owner),
      lines_(settings.limits.max_command_length),
      alive_(std::make_shared<bool>(true)) {
    stream_ = std::make_unique<Stream>(base, std::move(fd), this);
    stream_->set_idle_timeout(settings_.timeout);
    log::debug("%s: connect", id_.c_str());
    send(reply(220, "", settings_.hostname + " " + settings_.greeting));
}

LmtpSession::~LmtpSession() = default;

void LmtpSession::send(const std::string& text) {
    if (corked_) held_ += text;
    else stream_->write(text);
}

// The replies to pipelined commands (RFC 2920) go out in one write once the input is used up.
void LmtpSession::on_input(Stream& stream) noexcept {
    corked_ = true;
    consume(stream);
    uncork();
}

void LmtpSession::uncork() {
    corked_ = false;
    if (held_.empty()) return;
    stream_->write(held_);
    held_.clear();
}

void LmtpSession::consume(Stream& stream) {
    evbuffer* in = stream.input();
    size_t window = std::max(kWindow, settings_.limits.max_command_length + 2);
    while (!stream.closing() && !waiting_) {
        if (!data_) {
            if (!step_command()) return;
            continue;
        }
        // The bytes of the first chain as they lie: the reader takes any split, so nothing is copied
        // to make the window contiguous.
        evbuffer_iovec v;
        if (evbuffer_peek(in, -1, nullptr, &v, 1) < 1 || v.iov_len == 0) return;
        std::string_view input(static_cast<const char*>(v.iov_base), std::min(v.iov_len, window));
        if (!step_data(input)) return;
    }
}

// One command line from the input; false when more bytes are needed.
bool LmtpSession::step_command() {
    auto step = lines_.next(stream_->input());
    switch (step.status) {
        case LineFramer::Status::need_more:
            return false;
        case LineFramer::Status::too_long:
            log::warnx("%s: command line too long", id_.c_str());
            send(reply(500, "5.5.2", "Line too long"));
            return true;
        case LineFramer::Status::line:
            handle_command(step.line);
            return true;
    }
    return false;
}

// Message bytes after 354, handed to the backend as they come; false when more bytes are needed.
bool LmtpSession::step_data(std::string_view input) {
    // The reader's output is at most its input: with the room made once, the buffer never grows.
    data_out_.clear();
    data_out_.reserve(input.size());
    auto step = data_->feed(input, data_out_);
    evbuffer_drain(stream_->input(), step.consumed);
    if (!data_out_.empty()) backend_->data(data_out_);
    if (step.status == DataReader::Status::need_more) return step.consumed > 0;
    finish_data();
    return true;
}

void LmtpSession::handle_command(std::string_view line) {
    std::string verb = first_word(line);
    if (verb == "HELO" || verb == "EHLO") {
        send(reply(500, "5.5.1", "This is an LMTP server: use LHLO"));
        return;
    }
    if (verb.size() > 1 && verb[0] == 'X' && serve_private(line)) return;
    auto cmd = parse_command(line, settings_.limits);
    if (!cmd) {
        send(reply(cmd.error()));
        return;
    }
    if (auto refusal = dispatch(kCommands, std::string_view(cmd->verb), kAnyState, *this, *cmd, kReplies))
        send(reply(*refusal));
}

// Input stays paused until the backend's answer is sent, as while it answers a final dot.
bool LmtpSession::serve_private(std::string_view line) {
    waiting_ = true;
    stream_->pause_input();
    std::weak_ptr<bool> alive = alive_;
    bool served = backend_->private_command(line, [this, alive](std::string answer) {
        if (alive.expired() || !waiting_) return;
        send(answer);
        waiting_ = false;
        stream_->resume_input();
    });
    if (!served) {
        waiting_ = false;
        stream_->resume_input();
    }
    return served;
}

Result<void> LmtpSession::check_mail(const Command& cmd) const {
    if (!greeted_) return bad_sequence("Send LHLO first");
    if (in_transaction_) return bad_sequence("Nested MAIL command");
    uint64_t limit = settings_.message_size_limit;
    if (cmd.params.size && *cmd.params.size > limit)  // RFC 1870 6.1
        return make_error(552, "5.3.4", "Message size exceeds fixed limit of " + std::to_string(limit) + " bytes");
    return {};
}

Result<void> LmtpSession::check_rcpt(const Command& cmd) const {
    if (!in_transaction_) return bad_sequence("Need MAIL command");
    if (recipients_.size() >= settings_.max_recipients) return make_error(452, "4.5.3", "Too many recipients");
    if (cmd.path.domain.empty()) return make_error(550, "5.1.1", "No such user here");
    if (cmd.path.utf8 && !smtputf8_) return utf8_without_smtputf8();
    return {};
}

Result<void> LmtpSession::check_data(const Command&) const {
    if (!in_transaction_) return bad_sequence("Need MAIL command");
    if (recipients_.empty()) return bad_sequence("No valid recipients");  // RFC 2033 4.2
    return {};
}

void LmtpSession::do_lhlo(const Command&) {
    reset_transaction();
    greeted_ = true;
    std::vector<std::string> lines = {settings_.hostname, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
                                      "SIZE " + std::to_string(settings_.message_size_limit)};
    if (settings_.smtputf8) lines.push_back("SMTPUTF8");
    if (settings_.dsn) lines.push_back("DSN");
    send(reply_lines(250, lines));
}

void LmtpSession::do_mail(const Command& cmd) {
    in_transaction_ = true;
    smtputf8_ = cmd.params.smtputf8;
    backend_->mail(cmd.path.null ? std::string() : cmd.path.mailbox(), cmd.params);
    send(reply(250, "2.1.0", "Ok"));
}

void LmtpSession::do_rcpt(const Command& cmd) {
    std::string address = cmd.path.mailbox();
    if (auto refusal = backend_->rcpt(address, cmd.rcpt)) {
        send(reply(*refusal));
        return;
    }
    recipients_.push_back(std::move(address));
    send(reply(250, "2.1.5", "Ok"));
}

void LmtpSession::do_data(const Command&) {
    data_.emplace(settings_.data_limits);
    backend_->data_start();
    send(reply(354, "", "Start mail input; end with <CRLF>.<CRLF>"));
}

void LmtpSession::do_rset(const Command&) {
    reset_transaction();
    send(reply(250, "2.0.0", "Ok"));
}

void LmtpSession::do_noop(const Command&) { send(reply(250, "2.0.0", "Ok")); }

void LmtpSession::do_quit(const Command&) {
    send(reply(221, "2.0.0", settings_.hostname + " closing connection"));
    uncork();
    stream_->close("quit");
}

void LmtpSession::finish_data() {
    std::optional<Error> refused = data_->error();
    data_.reset();
    waiting_ = true;
    replied_ = 0;
    stream_->pause_input();
    std::weak_ptr<bool> alive = alive_;
    backend_->end_of_data(refused, [this, alive](LmtpBackend::Reply r) {
        if (!alive.expired()) send_data_reply(std::move(r));
    });
}

// Each reply goes out as it comes, so the client's read timer starts afresh for the next one.
void LmtpSession::send_data_reply(LmtpBackend::Reply r) {
    if (!waiting_ || replied_ >= recipients_.size()) {
        // A backend bug must not turn into a reply to a command the client has not sent.
        log::errorx("%s: a reply after the last recipient's was dropped", id_.c_str());
        return;
    }
    send(r ? reply(250, "2.0.0", r.value()) : reply(r.error()));
    if (++replied_ < recipients_.size()) return;
    reset_transaction();
    waiting_ = false;
    stream_->resume_input();
}

void LmtpSession::reset_transaction() {
    in_transaction_ = false;
    smtputf8_ = false;
    recipients_.clear();
    data_.reset();
    backend_->reset();
}

void LmtpSession::on_timeout(Stream& stream) noexcept {
    log::info("%s: timeout", id_.c_str());
    send(reply(421, "4.4.2", settings_.hostname + " Timeout, closing connection"));
    stream.close("timeout");
}

void LmtpSession::on_close(Stream&, const std::string& reason) noexcept {
    log::debug("%s: disconnect: %s", id_.c_str(), reason.c_str());
    owner_.session_closed(this);  // destroys this session, its backend and its stream
}

}  // namespace ferry::smtp
