// One SMTP session (RFC 5321): reads pipelined commands and DATA from its Stream, replies in order.
#include "mta/smtpd/session.hpp"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "common/event/commit_stage.hpp"
#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/event/resolver_answer.hpp"
#include "mta/smtpd/commands.hpp"
#include "mta/smtpd/received.hpp"

namespace ferry::smtpd {

namespace {

// The verb of a command line, fit for a log line: one from the command table, else "unknown".
// Never the peer's text: after a SASL exchange that ended early the next line is often the
// client's (base64) password, and it must not reach the log in "reject:" or "timeout after" lines.
std::string loggable_verb(std::string_view line) {
    std::string v;
    for (char c : line.substr(0, std::min<size_t>(line.find(' '), 16))) {
        if (c <= 0x20 || c >= 0x7f) break;
        v += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return find_command(v) ? v : "unknown";
}

// Overwrites a copy of a password before its memory is freed.
void wipe(std::string& s) {
    if (!s.empty()) explicit_bzero(s.data(), s.size());
    s.clear();
}

}  // namespace

Session::Session(Server& server, Fd fd, ListenerKind kind, std::string id)
    : server_(server), kind_(kind), id_(std::move(id)), stream_(server.base(), std::move(fd), this),
      deadline_(server.base(), server.settings().timeout, server.settings().min_data_rate, [this] { on_deadline(); }),
      lines_(server.settings().max_command_length), auth_lines_(kMaxAuthLine) {
    limits_.max_command_length = settings().max_command_length;
    if (kind_ == ListenerKind::smtps) {
        log::info("%s: connect from [%s] on %s", id_.c_str(), client().c_str(), kind_name(kind));
        begin_handshake("TLS");  // RFC 8314 3.3: the greeting comes over TLS
        return;
    }
    stream_.set_idle_timeout(settings().timeout);
    greet();  // before the log line: the client waits on it
    log::info("%s: connect from [%s] on %s", id_.c_str(), client().c_str(), kind_name(kind));
}

Session::~Session() = default;

void Session::greet() {
    reply(220, "", settings().hostname + " ESMTP ferry");
    flush();
}

bool Session::may_relay() const {
    return authenticated() || net::in_networks(settings().relay_networks, client());
}

bool Session::plaintext_auth_ok() const {
    return plaintext_allowed(settings().plaintext_auth, stream_.is_tls(), stream_.peer_is_loopback());
}

// ---- TLS: STARTTLS (RFC 3207) and implicit TLS (RFC 8314) ----

void Session::start_tls() {
    reply(220, "2.0.0", "Ready to start TLS");
    flush();  // in the clear, after every reply queued before it
    begin_handshake("STARTTLS");
}

void Session::begin_handshake(const char* how) {
    // STARTTLS and smtps are offered only with a certificate, so this cannot come from a client: abort.
    if (!server_.tls()) log::panic("TLS handshake without a certificate");
    phase_ = Phase::handshake;  // on_input stops: nothing pipelined after STARTTLS is parsed
    deadline_.end();            // tls_handshake_timeout governs the handshake
    stream_.set_idle_timeout(settings().handshake_timeout);
    // start_tls drops the input buffer: commands sent before the handshake are never executed
    // (the STARTTLS injection, CVE-2011-0411).
    stream_.start_tls(server_.tls()->server(stream_.fd()), [this, how](Result<void> r) { on_tls_done(r, how); });
}

void Session::on_tls_done(const Result<void>& r, const char* how) {
    if (!r) {
        log::info("%s: [%s]: %s: %s", id_.c_str(), client().c_str(), how, r.error().what().c_str());
        return;  // on_close follows
    }
    log::info("%s: [%s]: %s: %s", id_.c_str(), client().c_str(), how, stream_.tls_description().c_str());
    // RFC 3207 4.2: forget everything learned from the client before TLS; a new EHLO comes first.
    helo_.clear();
    esmtp_ = false;
    auth_user_.clear();
    exchange_.reset();
    reset_transaction();
    lines_ = LineFramer(settings().max_command_length);  // no half-line survives either
    auth_lines_ = LineFramer(kMaxAuthLine);
    phase_ = Phase::command;
    stream_.set_idle_timeout(settings().timeout);
    if (kind_ == ListenerKind::smtps) greet();
}

// ---- AUTH (RFC 4954) ----

void Session::start_auth(sasl::Mechanism mech, std::optional<std::string_view> initial_response) {
    auth_mech_ = mech == sasl::Mechanism::plain ? "PLAIN" : mech == sasl::Mechanism::login ? "LOGIN" : "SCRAM-SHA-256";
    exchange_.emplace(mech, sasl::Limits{}, [this](const std::string& user) { return server_.auth().scram_keys(user); });
    auth_step(exchange_->start(initial_response));
}

void Session::auth_step(sasl::Step step) {
    switch (step.kind) {
    case sasl::Step::Kind::challenge:
        phase_ = Phase::auth;
        out_ += "334 " + step.challenge + "\r\n";
        return;
    case sasl::Step::Kind::done:
        exchange_.reset();
        check_password(step.creds.authcid, step.creds.password, step.scram);
        wipe(step.creds.password);
        return;
    case sasl::Step::Kind::cancelled:
    case sasl::Step::Kind::error:
        exchange_.reset();
        phase_ = Phase::command;
        log::info("%s: [%s]: AUTH %s failed: %s", id_.c_str(),
                  client().c_str(), auth_mech_.c_str(), step.error.reply().c_str());
        refuse(step.error);
        return;
    }
}

void Session::check_password(const std::string& user, const std::string& password,
                             std::shared_ptr<const sasl::ScramServer> scram) {
    phase_ = Phase::checking;
    deadline_.end();              // the client waits on us now
    stream_.pause_input();        // pipelined commands wait for the verdict
    stream_.set_idle_timeout(0);  // the client waits on us (and on the failure delay): not idleness
    auto cb = [this](const AuthResult& r) { on_auth_result(r); };
    ticket_ = scram ? server_.auth().check_scram(user, std::move(scram), client(), cb)
                    : server_.auth().check(user, password, client(), cb);
}

void Session::on_auth_result(const AuthResult& r) {
    phase_ = Phase::command;
    stream_.set_idle_timeout(settings().timeout);
    const char* mech = auth_mech_.c_str();
    switch (r.status) {
    case AuthResult::ok:
        auth_user_ = r.user;
        log::info("%s: [%s]: AUTH %s user=%s ok", id_.c_str(), client().c_str(), mech, r.user.c_str());
        reply(235, "2.7.0", "Authentication successful");
        break;
    case AuthResult::failed:
        log::info("%s: [%s]: AUTH %s user=%s failed: %s", id_.c_str(),
                  client().c_str(), mech, r.user.c_str(), r.detail.c_str());
        refuse(make_error(535, "5.7.8", "Authentication credentials invalid"));
        break;
    case AuthResult::refused:
        // auth_max_failures reached: the password was not even checked. Say so and hang up.
        log::warnx("%s: [%s]: AUTH %s user=%s refused: %s", id_.c_str(),
                   client().c_str(), mech, r.user.c_str(), r.detail.c_str());
        reply(421, "4.7.0", settings().hostname + " Error: too many failed authentication attempts, try again later");
        phase_ = Phase::done;
        close_reason_ = "too many failed authentication attempts";
        break;
    case AuthResult::tempfail:
        log::warnx("%s: [%s]: AUTH %s user=%s tempfail: %s", id_.c_str(),
                   client().c_str(), mech, r.user.c_str(), r.detail.c_str());
        refuse(make_error(454, "4.7.0", "Temporary authentication failure"));
        break;
    }
    flush();
    if (phase_ == Phase::done) {
        stream_.close(close_reason_);
        return;
    }
    stream_.resume_input();  // hands the commands that waited back through on_input
}

// RFC 7208 2.5: the check is for mail from outside. A client that logged in or that is in
// smtpd_relay_networks is ours: its mail is not checked against the sender's published hosts.
bool Session::spf_applies() const {
    return settings().spf_policy != SpfPolicy::off && server_.resolver() && !may_relay() &&
           !dns::numeric_address(client()).empty();
}

void Session::begin_mail() {
    if (!spf_applies()) return reply(250, "2.1.0", "Ok");
    phase_ = Phase::checking;
    deadline_.end();              // the client waits on us now
    stream_.pause_input();        // pipelined RCPTs wait for the verdict
    stream_.set_idle_timeout(0);  // bounded by smtpd_spf_timeout instead
    verify::spf::Request req{client(), tx_.sender, helo_, settings().hostname, std::time(nullptr)};
    spf_ = start_spf(server_.base(), *server_.resolver(), std::move(req), settings().spf_timeout,
                     [this](verify::spf::Verdict v) { on_spf(std::move(v)); });
}

void Session::on_spf(verify::spf::Verdict v) {
    spf_.reset();
    phase_ = Phase::command;
    stream_.set_idle_timeout(settings().timeout);
    const char* result = verify::spf::result_name(v.result);
    log::info("%s: [%s]: spf=%s %s=%s (%s)", id_.c_str(), client().c_str(), result, v.identity.c_str(),
              v.sender.c_str(), v.reason.c_str());
    if (v.result == verify::spf::Result::fail && settings().spf_policy == SpfPolicy::reject_fail) {
        reject(make_error(550, "5.7.23", spf_fail_text(v), "spf=fail"), "MAIL");
        reset_transaction();
    } else {
        tx_.spf = std::move(v);
        reply(250, "2.1.0", "Ok");
    }
    flush();
    if (phase_ == Phase::done) {
        stream_.close(close_reason_);
        return;
    }
    stream_.resume_input();  // hands the commands that waited back through on_input
}

void Session::reply(int code, std::string_view enhanced, std::string_view text) {
    out_ += smtp::reply(code, enhanced, text);
}

void Session::reply_lines(int code, const std::vector<std::string>& lines) { out_ += smtp::reply_lines(code, lines); }

void Session::flush() {
    if (out_.empty()) return;
    stream_.write(out_);
    out_.clear();
}

void Session::reject(const Error& error, const std::string& verb) {
    std::string extra;
    if (!error.detail.empty()) extra = " (" + error.detail + ")";
    if (tx_.active) extra += " from=<" + tx_.sender + ">";
    log::info("%s: reject: %s from [%s]: %s%s", id_.c_str(),
              verb.c_str(), client().c_str(), error.reply().c_str(), extra.c_str());
    refuse(error);
}

void Session::refuse(const Error& error) {
    reply(error.code, error.enhanced, error.text);
    // 452 says "not now, not here" (too many recipients, RFC 5321 4.5.3.1.10): a pipelining client
    // that sends more RCPTs than the limit is not misbehaving, so it must not reach the 421.
    if (error.code == 452) return;
    if (settings().max_errors > 0 && ++errors_ >= settings().max_errors) {
        log::info("%s: too many errors after %s from [%s]", id_.c_str(), last_verb_.c_str(), client().c_str());
        reply(421, "4.7.0", settings().hostname + " Error: too many errors");
        phase_ = Phase::done;
        close_reason_ = "too many errors";
    }
}

void Session::set_helo(const std::string& helo, bool esmtp) {
    helo_ = helo;
    esmtp_ = esmtp;
    reset_transaction();  // RFC 5321 4.1.4: EHLO and HELO also reset the transaction
}

// A BDAT transaction may have a spool file open between chunks: RSET, EHLO or STARTTLS drops it.
void Session::reset_transaction() {
    tx_ = Transaction{};
    if (incoming_ && phase_ != Phase::data && phase_ != Phase::chunk) {
        incoming_->discard();
        incoming_.reset();
    }
}

void Session::quit() {
    reply(221, "2.0.0", settings().hostname + " Bye");
    phase_ = Phase::done;
    close_reason_ = "QUIT";
}

void Session::on_input(Stream&) noexcept {
    evbuffer* in = stream_.input();
    // A client that pipelines without ever reading its replies would grow our output without end.
    if (stream_.output_pending() > kMaxUnreadReplies) {
        log::warnx("%s: %zu bytes of replies unread by [%s]; dropping the connection", id_.c_str(),
                   stream_.output_pending(), client().c_str());
        stream_.abort("replies not read");
        return;
    }
    while (reading() && !stream_.closing() && evbuffer_get_length(in) > 0) {
        bool progressed = phase_ == Phase::data ? read_data() : phase_ == Phase::chunk ? read_chunk() : read_command();
        if (!progressed) break;
    }
    if (stopping_ && phase_ == Phase::command) {
        reply(421, "4.3.2", settings().hostname + " Service shutting down");
        phase_ = Phase::done;
        close_reason_ = "server stopping";
    }
    flush();
    if (phase_ == Phase::done) return stream_.close(close_reason_);
    track_command_deadline();
}

// A command line counts from its first byte until its end (a partial line waits in the input, or
// an over-long one is being skipped); DATA has its own deadline, from 354 to the final dot.
void Session::track_command_deadline() {
    if (phase_ == Phase::data || phase_ == Phase::chunk) return;
    bool partial = evbuffer_get_length(stream_.input()) > 0 || lines_.discarding() || auth_lines_.discarding();
    if ((phase_ == Phase::command || phase_ == Phase::auth) && partial) deadline_.begin();
    else deadline_.end();
}

void Session::on_deadline() {
    log::info("%s: deadline exceeded after %s from [%s]: %llu bytes in %.0f s (smtpd_timeout, smtpd_min_data_rate)",
              id_.c_str(), last_verb_.c_str(), client().c_str(), static_cast<unsigned long long>(deadline_.bytes()),
              deadline_.elapsed());
    hang_up(421, "4.4.2", settings().hostname + " Error: timeout exceeded", "deadline exceeded");
}

void Session::on_lifetime_expired() {
    log::info("%s: session lifetime exceeded after %s from [%s] (smtpd_session_lifetime)", id_.c_str(),
              last_verb_.c_str(), client().c_str());
    hang_up(421, "4.4.2", settings().hostname + " Error: session lifetime exceeded", "session lifetime exceeded");
}

void Session::on_stop() {
    stopping_ = true;
    // A message on its way finishes first (on_input closes after it), within shutdown_timeout;
    // a pending password check is dropped like any other state.
    if (phase_ == Phase::data || phase_ == Phase::chunk || phase_ == Phase::inspecting ||
        phase_ == Phase::committing)
        return;
    hang_up(421, "4.3.2", settings().hostname + " Service shutting down", "server stopping");
}

// Ends the session with a last reply; during a TLS handshake there is no channel to say it on.
void Session::hang_up(int code, std::string_view enhanced, const std::string& text, const std::string& reason) {
    if (stream_.closing()) return;
    deadline_.end();
    ticket_.reset();  // a pending password check's answer must not run after this
    spf_.reset();     // nor a pending SPF check's
    inspection_.reset();  // nor a message check's: the message, never answered, is not accepted
    if (phase_ == Phase::handshake) return stream_.abort(reason);
    phase_ = Phase::done;
    reply(code, enhanced, text);
    flush();
    stream_.close(reason);
}

// One command line, or as much of an over-long one as there is, from the input buffer.
bool Session::read_command() {
    if (phase_ == Phase::auth) return read_auth_line();
    auto step = lines_.next(stream_.input());
    switch (step.status) {
    case LineFramer::Status::line:
        handle_line(step.line);
        return true;
    case LineFramer::Status::too_long:
        reject(make_error(500, "5.5.2", "Error: line too long"), "?");
        return true;
    case LineFramer::Status::need_more:
        break;
    }
    return false;
}

// One SASL response line after a 334 challenge.
bool Session::read_auth_line() {
    auto step = auth_lines_.next(stream_.input());
    switch (step.status) {
    case LineFramer::Status::line:
        auth_step(exchange_->next(step.line));
        wipe(step.line);
        return true;
    case LineFramer::Status::too_long:
        // The exchange ends here; the rest of the line, through its LF, must never be read as a command.
        if (auth_lines_.discarding()) lines_.discard_line();
        auth_lines_ = LineFramer(kMaxAuthLine);
        exchange_.reset();
        phase_ = Phase::command;
        reject(make_error(500, "5.5.6", "Authentication exchange line is too long"), "AUTH");
        return true;
    case LineFramer::Status::need_more:
        break;
    }
    return false;
}

void Session::handle_line(std::string_view line) {
    auto cmd = smtp::parse_command(line, limits_);
    last_verb_ = loggable_verb(line);
    if (!cmd) {
        reject(cmd.error(), last_verb_);
        // A BDAT whose size is unknown leaves its chunk where commands are read: nothing after
        // it can be trusted to be a command, so the session ends here.
        if (smtp::bdat_unsynchronised(cmd.error()) && phase_ != Phase::done) {
            reply(421, "4.5.0", settings().hostname + " Error: cannot find the end of the BDAT chunk, closing");
            phase_ = Phase::done;
            close_reason_ = "BDAT chunk size unknown";
        }
        return;
    }
    if (auto refusal = dispatch_command(*this, *cmd)) {
        reject(*refusal, find_command(cmd->verb) ? cmd->verb : last_verb_);
        if (cmd->verb == "BDAT") skip_chunk(cmd->bdat.size);
    }
}

// The envelope of the transaction for its queue file.
namespace {

spool::Envelope envelope_of(const Transaction& tx) {
    spool::Envelope env;
    env.sender = tx.sender;
    env.recipients = tx.recipients;
    env.smtputf8 = tx.params.smtputf8;
    using Body = smtp::MailParams::Body;
    if (tx.params.body != Body::unspecified) env.body = tx.params.body == Body::eight_bit_mime ? "8BITMIME" : "7BIT";
    if (tx.params.ret != dsn::Ret::unspecified) env.ret = tx.params.ret == dsn::Ret::full ? "FULL" : "HDRS";
    if (tx.params.envid) env.envid = dsn::xtext_encode(*tx.params.envid);
    for (const auto& p : tx.rcpt_params)
        env.rcpt_dsn.push_back({dsn::notify_text(p.notify), p.orcpt ? dsn::orcpt_text(*p.orcpt) : ""});
    return env;
}

}  // namespace

// Opens the spool file and writes the Received: header; false (and the reply given) when it fails.
bool Session::open_incoming(smtp::DataReader::Framing framing, const std::string& verb) {
    spool::Envelope env = envelope_of(tx_);
    env.arrival = std::time(nullptr);
    env.client = client();
    env.helo = helo_;
    env.auth = auth_user_;
    smtp::DataLimits limits{server_.policy().size_limit(), settings().max_line_length, settings().max_header_size,
                            settings().max_received};
    auto incoming = Incoming::start(settings().spool_dir, env, limits, framing);
    if (!incoming) {
        reject(incoming.error(), verb);
        return false;
    }
    TraceInfo trace{helo_, client(), settings().hostname, esmtp_, stream_.is_tls(), authenticated(),
                    stream_.tls_description(), auth_user_, env.id, tx_.recipients, env.arrival, tx_.params.smtputf8};
    std::string trace_fields = received_header(trace);
    // With DKIM verification the SPF verdict joins the one field written after DATA (DkimCheck).
    if (tx_.spf && !settings().dkim_verify) trace_fields += authentication_results(settings().hostname, tx_.spf, "");
    if (auto r = incoming->prepend(trace_fields); !r) {
        incoming->discard();
        reject(r.error(), verb);
        return false;
    }
    incoming_.emplace(std::move(incoming.value()));
    incoming_->drop_forged_results(settings().hostname);  // RFC 8601 5: ours is the only one to trust
    return true;
}

void Session::begin_data() {
    if (!open_incoming(smtp::DataReader::Framing::dot, "DATA")) return;
    phase_ = Phase::data;
    reply(354, "", "End data with <CR><LF>.<CR><LF>");
    flush();  // the client waits for 354 before it sends the message (RFC 2920 3.1)
    deadline_.end();
    deadline_.begin();
}

// The message bytes that are in the input buffer, one contiguous piece at a time.
bool Session::read_data() {
    evbuffer* in = stream_.input();
    evbuffer_iovec v;
    if (evbuffer_peek(in, -1, nullptr, &v, 1) < 1 || v.iov_len == 0) return false;
    auto step = incoming_->feed(std::string_view(static_cast<const char*>(v.iov_base), v.iov_len));
    evbuffer_drain(in, step.consumed);
    deadline_.add(step.consumed);
    if (step.status == smtp::DataReader::Status::done) finish_data();
    return true;
}

void Session::begin_chunk(const smtp::Bdat& bdat) {
    tx_.bdat = true;
    if (!incoming_ && !open_incoming(smtp::DataReader::Framing::chunked, "BDAT")) {
        reset_transaction();  // RFC 3030 3: a refused chunk fails the transaction
        return skip_chunk(bdat.size);
    }
    chunk_left_ = chunk_size_ = bdat.size;
    chunk_last_ = bdat.last;
    chunk_keep_ = true;
    phase_ = Phase::chunk;
    deadline_.end();
    deadline_.begin();  // like a DATA, a chunk has smtpd_timeout and smtpd_min_data_rate to arrive
    if (chunk_left_ == 0) end_chunk();
}

void Session::skip_chunk(uint64_t size) {
    if (phase_ == Phase::done) return;  // the refusal ended the session (smtpd_max_errors)
    chunk_left_ = chunk_size_ = size;
    chunk_last_ = false;
    chunk_keep_ = false;
    phase_ = Phase::chunk;
    deadline_.end();
    deadline_.begin();
    if (chunk_left_ == 0) end_chunk();
}

// The chunk's bytes that are in the input buffer, one contiguous piece at a time; never past its end.
bool Session::read_chunk() {
    evbuffer* in = stream_.input();
    evbuffer_iovec v;
    if (evbuffer_peek(in, -1, nullptr, &v, 1) < 1 || v.iov_len == 0) return false;
    size_t n = static_cast<size_t>(std::min<uint64_t>(v.iov_len, chunk_left_));
    if (chunk_keep_ && incoming_) incoming_->feed(std::string_view(static_cast<const char*>(v.iov_base), n));
    evbuffer_drain(in, n);
    chunk_left_ -= n;
    deadline_.add(n);
    if (chunk_left_ == 0) end_chunk();
    return true;
}

// A chunk is in: 250 for it, or after LAST the commit; an error found in it fails the transaction.
void Session::end_chunk() {
    phase_ = Phase::command;
    deadline_.end();
    if (!chunk_keep_) return;  // refused already
    if (!incoming_) return;    // cannot happen: a kept chunk has its spool file
    if (chunk_last_) {
        incoming_->end_chunks();
        return finish_data();
    }
    if (incoming_->error()) return finish_data();  // RFC 3030 3: the error ends the transaction
    reply(250, "2.0.0", std::to_string(chunk_size_) + " octets received");
}

// The end of DATA or BDAT LAST: the message goes to the commit stage, and 250 comes only once it
// is on disk (on_committed); a message refused already is answered at once.
void Session::finish_data() {
    Incoming incoming = std::move(*incoming_);
    incoming_.reset();
    phase_ = Phase::command;
    deadline_.end();
    Committing what{id_, incoming.id(), tx_.sender, client(), authenticated() ? " auth=" + auth_user_ : "",
                    incoming.size(), tx_.recipients.size()};
    Transaction tx = tx_;  // what the checks look at
    reset_transaction();   // whatever happens, the session continues in the RSET state
    if (auto e = incoming.error()) {
        incoming.discard();
        log::info("%s: %s: discarded: from=<%s> size=%llu client=[%s]: %s", id_.c_str(), what.id.c_str(),
                  what.from.c_str(), static_cast<unsigned long long>(what.size), client().c_str(), e->what().c_str());
        return refuse(*e);
    }
    auto writer = incoming.finish();
    if (!writer) {
        log::errorx("%s: %s: not queued: %s", id_.c_str(), what.id.c_str(), writer.error().what().c_str());
        return refuse(writer.error());
    }
    if (size_t n = incoming.forged_results())
        log::info("%s: %s: removed %zu Authentication-Results header(s) claiming %s", id_.c_str(), what.id.c_str(), n,
                  settings().hostname.c_str());
    if (size_t n = incoming.forged_spam_fields())
        log::info("%s: %s: removed %zu X-Spam-* header(s) from outside", id_.c_str(), what.id.c_str(), n);
    if (size_t n = incoming.forged_virus_marks())
        log::info("%s: %s: removed %zu X-Virus-Scanned header(s) claiming %s", id_.c_str(), what.id.c_str(), n,
                  settings().hostname.c_str());
    inspect(std::move(writer.value()), std::move(what), tx);
}

void Session::inspect(spool::Writer writer, Committing what, const Transaction& tx) {
    if (server_.checks().empty()) {
        test_pause_point(server_.config(), "smtpd-before-commit", what.id);
        return commit(std::move(writer), std::move(what));
    }
    auto data = writer.reader();
    if (!data) {
        log::errorx("%s: %s: not queued: %s", id_.c_str(), what.id.c_str(), data.error().what().c_str());
        writer.discard();
        return refuse(Incoming::commit_failure(data.error()));
    }
    auto m = std::make_shared<CheckedMessage>();
    m->session = id_;
    m->id = what.id;
    m->client = client();
    m->helo = helo_;
    m->sender = what.from;
    m->recipients = tx.recipients;
    m->auth_user = auth_user_;
    m->relay_client = may_relay();
    m->spf = tx.spf;
    m->data = std::move(data.value());
    inspection_ = std::make_unique<Inspection>();
    inspection_->writer.emplace(std::move(writer));
    inspection_->what = std::move(what);
    inspection_->message = std::move(m);
    phase_ = Phase::inspecting;
    stream_.pause_input();
    stream_.set_idle_timeout(0);  // each check bounds its own time
    run_check(0);
}

void Session::run_check(size_t k) {
    auto& checks = server_.checks();
    if (k == checks.size()) {
        auto done = std::move(inspection_);
        phase_ = Phase::command;
        if (!done->fields.empty())
            if (auto r = done->writer->add_header(done->fields); !r) {
                log::errorx("%s: %s: not queued: %s", id_.c_str(), done->what.id.c_str(), r.error().what().c_str());
                done->writer->discard();
                refuse(Incoming::commit_failure(r.error()));
                return end_commit();
            }
        test_pause_point(server_.config(), "smtpd-before-commit", done->what.id);
        return commit(std::move(*done->writer), std::move(done->what));
    }
    inspection_->run = checks[k]->start(inspection_->message, [this, k](Finding f) { on_check(k, std::move(f)); });
}

void Session::on_check(size_t k, Finding f) {
    inspection_->run.reset();
    if (f.refusal) {
        auto done = std::move(inspection_);
        done->writer->discard();
        phase_ = Phase::command;
        log::info("%s: %s: refused by %s: from=<%s> size=%llu client=[%s]: %s", id_.c_str(), done->what.id.c_str(),
                  server_.checks()[k]->name(), done->what.from.c_str(),
                  static_cast<unsigned long long>(done->what.size), client().c_str(), f.refusal->what().c_str());
        refuse(*f.refusal);
        return end_commit();
    }
    inspection_->fields += f.fields;
    inspection_->message->found += f.fields;
    run_check(k + 1);
}

// Hands the message to the commit stage; until it is done the session reads nothing (RFC 2920:
// the replies keep the order of the commands) and is not idle (the client waits on us).
void Session::commit(spool::Writer writer, Committing what) {
    phase_ = Phase::committing;
    stream_.pause_input();
    stream_.set_idle_timeout(0);
    auto w = std::make_shared<spool::Writer>(std::move(writer));
    const Config& config = server_.config();
    CommitStage::Item item;
    // Linked first, then the file's fsync beside that of queue/ (ferry-spool(5), COMMIT PROTOCOL).
    item.sync = [w, &config, &dir = server_.queue_sync()]() -> Result<void> {
        auto r = w->sync_linked(dir, [&] { test_pause_point(config, "smtpd-after-publish", w->id()); });
        if (r) test_pause_point(config, "smtpd-after-sync", w->id());
        return r;
    };
    item.publish = [w] { return w->publish(); };
    // Between the link into queue/ (and its fsync) and the unlink of incoming/: both names of one file.
    item.settle = [w, &config](const Result<void>& dir) {
        return w->settle(dir, [&] { test_pause_point(config, "smtpd-after-link", w->id()); });
    };
    item.done = [w, what = std::move(what), session = std::weak_ptr<Session*>(token_), &server = server_](
                    Result<void> r) { on_committed(server, session, *w, what, std::move(r)); };
    server_.commit_stage().submit(std::move(item));
}

void Session::on_committed(Server& server, const std::weak_ptr<Session*>& session, spool::Writer& writer,
                           const Committing& what, Result<void> r) {
    auto live = session.lock();
    // Gone, or hung up meanwhile (its lifetime ended, and it said 421): no reply to give.
    Session* s = live && (*live)->phase_ == Phase::committing ? *live : nullptr;
    if (!r) {
        writer.discard();  // its incoming/ name goes before the 451
        log::errorx("%s: %s: not queued: %s", what.session.c_str(), what.id.c_str(), r.error().what().c_str());
        if (!s) return;
        s->phase_ = Phase::command;
        s->refuse(Incoming::commit_failure(r.error()));
        return s->end_commit();
    }
    // On an id collision in queue/ the commit renames the message, so the id is read again.
    const std::string queued = writer.id();
    test_pause_point(server.config(), "smtpd-after-commit", queued);
    // The client waits on the 250 and qmgr on the notice; the log lines can wait for both.
    if (s) {
        s->phase_ = Phase::command;
        s->reply(250, "2.0.0", "Ok: queued as " + queued);
        s->flush();
        test_pause_point(server.config(), "smtpd-after-reply", queued);
    }
    server.notifier().notify(queued);
    if (queued != what.id)
        log::info("%s: %s: queued as %s (queue id taken)", what.session.c_str(), what.id.c_str(), queued.c_str());
    log::info("%s: %s: from=<%s> size=%llu nrcpt=%zu client=[%s]%s (queued)", what.session.c_str(), queued.c_str(),
              what.from.c_str(), static_cast<unsigned long long>(what.size), what.nrcpt, what.client.c_str(),
              what.auth.c_str());
    if (s) s->end_commit();
}

void Session::end_commit() {
    flush();
    if (phase_ == Phase::done) return stream_.close(close_reason_);  // smtpd_max_errors reached
    if (stopping_) return hang_up(421, "4.3.2", settings().hostname + " Service shutting down", "server stopping");
    stream_.set_idle_timeout(settings().timeout);
    stream_.resume_input();  // hands the commands that waited back through on_input
}

void Session::on_timeout(Stream&) noexcept {
    log::info("%s: timeout after %s from [%s]", id_.c_str(), last_verb_.c_str(), client().c_str());
    hang_up(421, "4.4.2", settings().hostname + " Error: timeout exceeded", "timeout");
}

void Session::on_close(Stream&, const std::string& reason) noexcept {
    if (incoming_) {
        log::info("%s: %s: discarded: connection lost during DATA or BDAT from [%s]", id_.c_str(),
                  incoming_->id().c_str(), client().c_str());
        incoming_->discard();
    }
    ticket_.reset();
    token_.reset();  // a commit still on its way logs and notifies, but finds no session to answer
    log::info("%s: disconnect from [%s]: %s", id_.c_str(), client().c_str(), reason.c_str());
    deadline_.end();
    server_.sessions().release(this);  // destroyed from the loop, after this returns
}

}  // namespace ferry::smtpd
