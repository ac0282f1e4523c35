// One LMTP session (RFC 2033): LHLO, MAIL, RCPT, DATA with one reply per recipient, RSET, NOOP, QUIT.
#include "mda/lmtp_session.hpp"

#include <strings.h>

#include <map>

#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/spool/spool.hpp"
#include "mda/lmtp_server.hpp"
#include "mda/trace_headers.hpp"

namespace ferry::mda {

namespace {

Error bad_sequence(const char* text) { return make_error(503, "5.5.1", text); }

std::string first_word(std::string_view line) {
    size_t end = line.find(' ');
    std::string w(line.substr(0, end));
    for (char& c : w) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
    return w;
}

}  // namespace

const LmtpSession::CommandDef LmtpSession::kCommands[] = {
    {"LHLO", &LmtpSession::check_lhlo, &LmtpSession::do_lhlo},
    {"MAIL", &LmtpSession::check_mail, &LmtpSession::do_mail},
    {"RCPT", &LmtpSession::check_rcpt, &LmtpSession::do_rcpt},
    {"DATA", &LmtpSession::check_data, &LmtpSession::do_data},
    {"RSET", &LmtpSession::check_none, &LmtpSession::do_rset},
    {"NOOP", &LmtpSession::check_none, &LmtpSession::do_noop},
    {"QUIT", &LmtpSession::check_none, &LmtpSession::do_quit},
};

LmtpSession::LmtpSession(LmtpServer& server, event_base* base, Fd fd, uint64_t id)
    : server_(server), id_(id), lines_(server.settings().limits.max_command_length) {
    stream_ = std::make_unique<Stream>(base, std::move(fd), this);
    stream_->set_idle_timeout(server_.settings().timeout);
    log::debug("lmtp session %llu: connect", static_cast<unsigned long long>(id_));
    send(smtp::reply(220, "", server_.settings().hostname + " ferry-mda LMTP ready"));
}

void LmtpSession::send(const std::string& reply) { stream_->write(reply); }

void LmtpSession::on_input(Stream& stream) {
    evbuffer* in = stream.input();
    while (!stream.closing()) {
        size_t len = evbuffer_get_length(in);
        if (len == 0) return;
        std::string_view input(reinterpret_cast<const char*>(evbuffer_pullup(in, -1)), len);
        if (!(data_ ? step_data(input) : step_command(input))) return;
    }
}

// One command line from the input; false when more bytes are needed.
bool LmtpSession::step_command(std::string_view input) {
    auto step = lines_.next(input);
    std::string line(step.line);  // copied: the drain below invalidates the view
    evbuffer_drain(stream_->input(), step.consumed);
    switch (step.status) {
        case smtp::LineReader::Status::need_more:
            return false;
        case smtp::LineReader::Status::too_long:
            log::warnx("lmtp session %llu: command line too long", static_cast<unsigned long long>(id_));
            send(smtp::reply(500, "5.5.2", "Line too long"));
            return true;
        case smtp::LineReader::Status::line:
            handle_command(line);
            return true;
    }
    return false;
}

// Message bytes after 354; false when more bytes are needed.
bool LmtpSession::step_data(std::string_view input) {
    auto step = data_->feed(input, message_);
    evbuffer_drain(stream_->input(), step.consumed);
    if (step.status == smtp::DataReader::Status::need_more) return false;
    finish_data();
    return true;
}

void LmtpSession::handle_command(std::string_view line) {
    std::string verb = first_word(line);
    if (verb == "HELO" || verb == "EHLO") {
        send(smtp::reply(500, "5.5.1", "This is an LMTP server: use LHLO"));
        return;
    }
    auto cmd = smtp::parse_command(line, server_.settings().limits);
    if (!cmd) {
        send(smtp::reply(cmd.error()));
        return;
    }
    for (const auto& def : kCommands) {
        if (cmd->verb != def.verb) continue;
        if (auto refusal = (this->*def.check)(*cmd)) send(smtp::reply(*refusal));
        else (this->*def.proceed)(*cmd);
        return;
    }
    send(smtp::reply(500, "5.5.1", "Command unrecognized"));
}

std::optional<Error> LmtpSession::check_none(const smtp::Command&) const { return std::nullopt; }

std::optional<Error> LmtpSession::check_lhlo(const smtp::Command&) const { return std::nullopt; }

std::optional<Error> LmtpSession::check_mail(const smtp::Command& cmd) const {
    if (!greeted_) return bad_sequence("Send LHLO first");
    if (sender_) return bad_sequence("Nested MAIL command");
    uint64_t limit = server_.settings().message_size_limit;
    if (cmd.params.size && *cmd.params.size > limit)  // RFC 1870 6.1
        return make_error(552, "5.3.4", "Message size exceeds fixed limit of " + std::to_string(limit) + " bytes");
    return std::nullopt;
}

std::optional<Error> LmtpSession::check_rcpt(const smtp::Command& cmd) const {
    if (!sender_) return bad_sequence("Need MAIL command");
    if (recipients_.size() >= server_.settings().max_recipients)
        return make_error(452, "4.5.3", "Too many recipients");
    if (cmd.path.domain.empty()) return make_error(550, "5.1.1", "No such user here");
    return std::nullopt;
}

std::optional<Error> LmtpSession::check_data(const smtp::Command&) const {
    if (!sender_) return bad_sequence("Need MAIL command");
    if (recipients_.empty()) return bad_sequence("No valid recipients");  // RFC 2033 4.2
    return std::nullopt;
}

void LmtpSession::do_lhlo(const smtp::Command&) {
    reset_transaction();
    greeted_ = true;
    send(smtp::reply_lines(250, {server_.settings().hostname, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
                                 "SIZE " + std::to_string(server_.settings().message_size_limit)}));
}

void LmtpSession::do_mail(const smtp::Command& cmd) {
    sender_ = cmd.path.null ? std::string() : cmd.path.mailbox();
    send(smtp::reply(250, "2.1.0", "Ok"));
}

void LmtpSession::do_rcpt(const smtp::Command& cmd) {
    auto account = server_.deliverer().find_account(cmd.path.mailbox());
    if (!account) {
        const Error& e = account.error();
        log::info("lmtp session %llu: to=<%s> refused: %s", static_cast<unsigned long long>(id_),
                  cmd.path.mailbox().c_str(), e.what().c_str());
        send(smtp::reply(e));
        return;
    }
    std::string address = account->address;
    recipients_.push_back({std::move(address), std::move(account.value())});
    send(smtp::reply(250, "2.1.5", "Ok"));
}

void LmtpSession::do_data(const smtp::Command&) {
    data_.emplace(server_.settings().data_limits);
    message_.clear();
    send(smtp::reply(354, "", "Start mail input; end with <CRLF>.<CRLF>"));
}

void LmtpSession::do_rset(const smtp::Command&) {
    reset_transaction();
    send(smtp::reply(250, "2.0.0", "Ok"));
}

void LmtpSession::do_noop(const smtp::Command&) { send(smtp::reply(250, "2.0.0", "Ok")); }

void LmtpSession::do_quit(const smtp::Command&) {
    send(smtp::reply(221, "2.0.0", server_.settings().hostname + " closing connection"));
    stream_->close("quit");
}

void LmtpSession::finish_data() {
    std::string qid = queue_id_from_received(message_);
    if (qid.empty()) qid = spool::new_queue_id();  // no ferry Received: header: a local id still joins the lines
    std::vector<Result<std::string>> results;
    if (const auto& err = data_->error()) {
        log::info("%s: from=<%s> rejected: %s", qid.c_str(), sender_->c_str(), err->what().c_str());
        results.assign(recipients_.size(), *err);
    } else {
        log::info("%s: from=<%s> size=%zu nrcpt=%zu", qid.c_str(), sender_->c_str(), message_.size(),
                  recipients_.size());
        results = deliver_all(qid);
        test_pause_point(server_.config(), "mda-before-reply", qid);
    }
    for (size_t i = 0; i < results.size(); ++i) {
        const auto& r = results[i];
        send(r ? smtp::reply(250, "2.0.0", "<" + recipients_[i].address + "> delivered as " + qid)
               : smtp::reply(r.error()));
    }
    reset_transaction();
}

// Each distinct account gets one copy; a recipient given twice gets the same answer twice.
std::vector<Result<std::string>> LmtpSession::deliver_all(const std::string& qid) {
    std::map<std::string, Result<std::string>> done;
    std::vector<Result<std::string>> results;
    Deliverer& deliverer = server_.deliverer();
    for (const auto& rcpt : recipients_) {
        auto it = done.find(rcpt.address);
        if (it == done.end()) {
            auto maildir = deliverer.prepare(rcpt.account);
            auto r = maildir ? deliverer.write(qid, rcpt.account, *maildir, *sender_, message_)
                             : Result<std::string>(maildir.error());
            if (r) log::info("%s: to=<%s> delivered to maildir as %s", qid.c_str(), rcpt.address.c_str(), r->c_str());
            else log::warnx("%s: to=<%s> not delivered: %s", qid.c_str(), rcpt.address.c_str(), r.error().what().c_str());
            it = done.emplace(rcpt.address, std::move(r)).first;
        }
        results.push_back(it->second);
    }
    return results;
}

void LmtpSession::reset_transaction() {
    sender_.reset();
    recipients_.clear();
    data_.reset();
    message_.clear();
    message_.shrink_to_fit();
}

void LmtpSession::on_timeout(Stream& stream) {
    log::info("lmtp session %llu: timeout", static_cast<unsigned long long>(id_));
    send(smtp::reply(421, "4.4.2", server_.settings().hostname + " Timeout, closing connection"));
    stream.close("timeout");
}

void LmtpSession::on_close(Stream&, const std::string& reason) {
    log::debug("lmtp session %llu: disconnect: %s", static_cast<unsigned long long>(id_), reason.c_str());
    server_.session_closed(this);  // destroys this session and its stream
}

}  // namespace ferry::mda
