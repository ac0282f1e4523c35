// One POP3 connection: AUTHORIZATION, TRANSACTION and UPDATE states (RFC 1939) on a ferry::Stream.
#include "popd/session.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/auth/accounts.hpp"
#include "common/base/log.hpp"
#include "common/event/tls_accept.hpp"
#include "common/store/maildir.hpp"
#include "popd/listener.hpp"
#include "popd/response.hpp"

namespace ferry::pop3 {

namespace {
constexpr size_t kBacklogHigh = 1 << 20;      // stop taking commands above this much unsent output
constexpr size_t kBacklogLow = 256 << 10;     // and take them again below this
constexpr size_t kReadChunk = 65536;          // bytes of a message file read at a time for RETR and TOP
constexpr size_t kAheadMessages = 16;         // small messages read ahead at once after a RETR
}  // namespace

Session::Session(Server& server, Fd fd, bool implicit_tls, std::string id)
    : server_(server), stream_(server.base(), std::move(fd), this), id_(std::move(id)), implicit_tls_(implicit_tls),
      lines_(server.settings().limits.max_line),
      deadline_(server.base(), server.settings().command_deadline, 0, [this] {
          log::info("%s: command not complete within popd_command_deadline from %s", id_.c_str(), peer().c_str());
          hang_up(err("", "command deadline exceeded"), "command deadline exceeded");
      }),
      login_check_(server.auth(), stream_, [this](const AuthResult& r) { on_auth_result(r); }),
      // RFC 5034 section 4: a continuation is "+ " and the base64 challenge.
      sasl_(server.auth(), login_check_, [this](const std::string& c) { reply("+ " + c + "\r\n"); }) {
    stream_.set_output_low_water(kBacklogLow);
}

Session::~Session() { *self_ = nullptr; }

template <class Work, class Done>
void Session::off_loop(Work work, Done done) {
    server_.pool().submit(std::move(work), [self = self_, done = std::move(done)]() mutable {
        if (*self) done(**self);
    });
}

void Session::start() {
    const Settings& s = server_.settings();
    log::info("%s: connect from %s%s", id_.c_str(), stream_.peer().c_str(), implicit_tls_ ? " (pop3s)" : "");
    if (!implicit_tls_) {
        greet();
        return;
    }
    accept_tls(stream_, *server_.tls(), s.handshake_timeout, id_, "TLS established", [this] { greet(); });
}

void Session::greet() {
    state_ = State::authorization;
    stream_.set_idle_timeout(server_.settings().idle_timeout);
    // No APOP timestamp: ferry stores crypt(3) hashes, so it cannot check an APOP digest.
    reply(ok("ferry POP3 server ready on " + server_.settings().hostname));
}

void Session::on_close(Stream&, const std::string& reason) noexcept {
    // A connection that ends without QUIT never enters UPDATE: nothing is deleted (RFC 1939 section 6).
    if (maildrop_ && state_ != State::done)
        log::info("%s: disconnect user=%s (%s), no messages deleted", id_.c_str(), login_.c_str(), reason.c_str());
    else
        log::info("%s: disconnect from %s (%s)", id_.c_str(), stream_.peer().c_str(), reason.c_str());
    login_check_.reset();
    maildrop_.reset();
    deadline_.end();
    server_.session_closed(this);  // destroyed from the loop, after this returns
}

void Session::on_timeout(Stream& stream) noexcept {
    // The timer counts silence from the client, but a client still taking a large RETR is not idle.
    size_t pending = stream.output_pending();
    if (pending > 0 && pending != pending_at_timeout_) {
        pending_at_timeout_ = pending;
        stream.set_idle_timeout(server_.settings().idle_timeout);
        return;
    }
    log::info("%s: idle timeout", id_.c_str());
    reply(err("", "autologout; idle for too long"));
    stream.close("idle timeout");
}

void Session::on_lifetime_expired() {
    log::info("%s: session lifetime exceeded (popd_session_lifetime)", id_.c_str());
    hang_up(err(kSysTemp, "session lifetime exceeded"), "session lifetime exceeded");
}

// Not in UPDATE state: a stop never deletes messages (RFC 1939 section 6). One in UPDATE ends with its reply.
void Session::on_stop() {
    if (state_ == State::done && !stream_.closing()) return;
    hang_up(err(kSysTemp, "server shutting down"), "server stopping");
}

// Ends the session with a last line; during a TLS handshake there is no channel to say it on.
void Session::hang_up(const std::string& line, const std::string& reason) {
    if (stream_.closing()) return;
    deadline_.end();
    if (state_ == State::handshake) return stream_.abort(reason);
    reply(line);
    stream_.close(reason);
}

// A command line counts from its first byte to its end, while input is being read.
void Session::track_deadline() {
    bool reading = state_ == State::authorization || state_ == State::sasl || state_ == State::transaction;
    bool partial = evbuffer_get_length(stream_.input()) > 0 || lines_.discarding();
    if (reading && partial && !backlogged_ && !stream_.closing()) deadline_.begin();
    else deadline_.end();
}

bool Session::output_backlogged() {
    if (stream_.output_pending() < kBacklogHigh) return false;
    stream_.pause_input();
    backlogged_ = true;
    return true;
}

void Session::on_output_low(Stream& stream) noexcept {
    if (transfer_) return pump();
    if (!backlogged_) return;
    backlogged_ = false;
    stream.resume_input();  // hands the buffered commands back through on_input
}

void Session::on_input(Stream& stream) noexcept {
    read_lines(stream);
    track_deadline();
}

void Session::read_lines(Stream& stream) {
    evbuffer* in = stream.input();
    // RFC 2449 PIPELINING: take every whole line, one after another, until something must wait.
    while (!stream.closing() && (state_ == State::authorization || state_ == State::sasl || state_ == State::transaction)) {
        if (evbuffer_get_length(in) == 0 || transfer_ || output_backlogged()) return;
        auto step = lines_.next(in);
        switch (step.status) {
            case LineFramer::Status::need_more:
                return;
            case LineFramer::Status::too_long:
                log::info("%s: line longer than %zu bytes from %s", id_.c_str(), lines_.max_line(), stream.peer().c_str());
                if (state_ == State::sasl) {
                    sasl_.abort();
                    state_ = State::authorization;
                }
                reply(err("", "line too long"));
                continue;
            case LineFramer::Status::line:
                process_line(step.line);
                continue;
        }
    }
}

void Session::process_line(std::string_view line) {
    if (state_ == State::sasl) {
        after_sasl(sasl_.respond(line));
        return;
    }
    auto cmd = parse_command(line, server_.settings().limits);
    if (!cmd) {
        log::debug("%s: bad command: %s", id_.c_str(), cmd.error().text.c_str());
        reply(err(cmd.error()));
        return;
    }
    dispatch(*cmd);
}

const Session::CommandDef Session::kCommands[] = {
    {Verb::capa, kAnyState, nullptr, [](Session& s, const Command&) { s.cmd_capa(); }},
    {Verb::quit, kAnyState, nullptr, [](Session& s, const Command&) { s.cmd_quit(); }},
    {Verb::user, state_bit(State::authorization), nullptr, [](Session& s, const Command& c) { s.cmd_user(c); }},
    {Verb::pass, state_bit(State::authorization), nullptr, [](Session& s, const Command& c) { s.cmd_pass(c); }},
    {Verb::auth, state_bit(State::authorization), nullptr, [](Session& s, const Command& c) { s.cmd_auth(c); }},
    {Verb::stls, state_bit(State::authorization), nullptr, [](Session& s, const Command&) { s.cmd_stls(); }},
    {Verb::stat, state_bit(State::transaction), nullptr, [](Session& s, const Command&) { s.cmd_stat(); }},
    {Verb::list, state_bit(State::transaction), nullptr, [](Session& s, const Command& c) { s.cmd_list(c, false); }},
    {Verb::uidl, state_bit(State::transaction), nullptr, [](Session& s, const Command& c) { s.cmd_list(c, true); }},
    {Verb::retr, state_bit(State::transaction), nullptr, [](Session& s, const Command& c) { s.cmd_retr(c, std::nullopt); }},
    {Verb::top, state_bit(State::transaction), nullptr, [](Session& s, const Command& c) { s.cmd_retr(c, c.lines); }},
    {Verb::dele, state_bit(State::transaction), nullptr, [](Session& s, const Command& c) { s.cmd_dele(c); }},
    {Verb::noop, state_bit(State::transaction), nullptr, [](Session& s, const Command&) { s.reply(ok("")); }},
    {Verb::rset, state_bit(State::transaction), nullptr, [](Session& s, const Command&) { s.cmd_rset(); }},
};

void Session::dispatch(const Command& cmd) {
    // Passwords stay out of the log: PASS and AUTH are logged by keyword only.
    if (cmd.verb == Verb::pass || cmd.verb == Verb::auth) log::debug("%s: < %s", id_.c_str(), cmd.keyword.c_str());
    // Every verb is known here (parse_command refuses the others), so only the state can be wrong.
    static const DispatchReplies before_login{pop_error("", "command not valid before login"),
                                              pop_error("", "command not valid before login")};
    static const DispatchReplies after_login{pop_error("", "command not valid after login"),
                                             pop_error("", "command not valid after login")};
    const auto& replies = state_ == State::authorization ? before_login : after_login;
    if (auto refusal = ferry::dispatch(kCommands, cmd.verb, state_bit(state_), *this, cmd, replies))
        reply(err(*refusal));
}

// ---- AUTHORIZATION ----

bool Session::plaintext_ok() const {
    return plaintext_allowed(server_.settings().plaintext_auth, stream_.is_tls(), stream_.peer_is_loopback());
}

void Session::cmd_capa() {
    const Settings& s = server_.settings();
    std::string r = ok("Capability list follows");
    r += "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n";
    if (state_ == State::authorization) {
        // RFC 2595 section 4 / RFC 2449: offer logins only where plaintext_auth lets them be used.
        if (plaintext_ok()) {
            r += "USER\r\n";
            r += std::string("SASL ") + sasl::kMechanismsWithScram + "\r\n";
        }
        if (server_.tls() && !stream_.is_tls()) r += "STLS\r\n";
    }
    if (!s.expire.empty()) r += (s.expire == "never" ? std::string("EXPIRE NEVER") : "EXPIRE " + s.expire) + "\r\n";
    if (s.login_delay.count() > 0) r += "LOGIN-DELAY " + std::to_string(s.login_delay.count()) + "\r\n";
    r += "IMPLEMENTATION ferry-popd\r\n.\r\n";
    reply(r);
}

void Session::refuse_plaintext() {
    // RFC 2595 section 4: the client learns that TLS comes first; the code is what ferry.conf(5) names.
    reply(err(kAuth, "plaintext login not allowed without TLS; use STLS first"));
}

void Session::cmd_user(const Command& cmd) {
    if (!plaintext_ok()) {
        refuse_plaintext();
        return;
    }
    user_ = cmd.args[0];
    reply(ok("send PASS"));
}

void Session::cmd_pass(const Command& cmd) {
    if (!plaintext_ok()) {
        refuse_plaintext();
        return;
    }
    if (user_.empty()) {
        reply(err("", "send USER first"));
        return;
    }
    std::string user = std::move(user_);
    user_.clear();
    state_ = State::checking;
    login_check_.check_password(std::move(user), cmd.args[0]);
}

void Session::cmd_auth(const Command& cmd) {
    if (!plaintext_ok()) {
        refuse_plaintext();
        return;
    }
    if (cmd.args.empty()) {  // the mechanism list, as RFC 1734 clients ask for it
        reply(ok("SASL mechanisms follow") + "PLAIN\r\nLOGIN\r\nSCRAM-SHA-256\r\n.\r\n");
        return;
    }
    std::optional<std::string_view> initial;
    if (cmd.args.size() > 1) initial = cmd.args[1];
    auto next = sasl_.start(cmd.args[0], initial);
    if (!next) {
        reply(err("", "unsupported authentication mechanism"));
        return;
    }
    after_sasl(*next);
}

void Session::after_sasl(SaslLogin::Next next) {
    using Next = SaslLogin::Next;
    state_ = next == Next::respond ? State::sasl : next == Next::checking ? State::checking : State::authorization;
    if (next == Next::failed) reply(err("", sasl_.error().text));
}

void Session::cmd_stls() {
    if (!server_.tls()) {
        reply(err("", "TLS is not available"));
        return;
    }
    if (stream_.is_tls()) {
        reply(err("", "TLS is already active"));
        return;
    }
    reply(ok("Begin TLS negotiation"));
    state_ = State::handshake;
    user_.clear();
    // accept_tls drops pipelined input: commands sent before the handshake must not count (RFC 2595 section 4).
    accept_tls(stream_, *server_.tls(), server_.settings().handshake_timeout, id_, "STLS", [this] {
        state_ = State::authorization;
        stream_.set_idle_timeout(server_.settings().idle_timeout);
    });
}

void Session::on_auth_result(const AuthResult& r) {
    state_ = State::authorization;
    stream_.set_idle_timeout(server_.settings().idle_timeout);
    stream_.resume_input();
    switch (r.status) {
        case AuthResult::ok:
            login(r.user);
            return;
        case AuthResult::failed:
            log::info("%s: login failed from %s: %s", id_.c_str(), stream_.peer().c_str(), r.detail.c_str());
            reply(err(kAuth, "authentication failed"));
            return;
        case AuthResult::refused:
            log::warnx("%s: too many failed logins from %s, closing", id_.c_str(), stream_.peer().c_str());
            reply(err(kAuth, "too many failed logins; try again later"));
            stream_.close("too many failed logins");
            return;
        case AuthResult::tempfail:
            log::warnx("%s: login from %s: %s", id_.c_str(), stream_.peer().c_str(), r.detail.c_str());
            reply(err(kSysTemp, "authentication temporarily unavailable"));
            return;
    }
}

void Session::login(const std::string& user) {
    if (auto wait = server_.login_wait(user); wait.count() > 0) {
        log::info("%s: login of %s refused by LOGIN-DELAY (%llds left)", id_.c_str(), user.c_str(),
                  static_cast<long long>(wait.count()));
        reply(err(kLoginDelay, "minimum time between logins has not passed"));
        return;
    }
    auto dir = maildir::account_maildir(server_.settings().mail_dir, user);
    if (!dir) {
        log::warnx("%s: %s: %s", id_.c_str(), user.c_str(), dir.error().what().c_str());
        reply(err(kSysPerm, "mailbox unavailable"));
        return;
    }
    if (server_.locks().contains(*dir)) {
        log::info("%s: login of %s: maildrop already locked", id_.c_str(), user.c_str());
        reply(err(kInUse, "maildrop already locked by another POP3 session"));
        return;
    }
    // The lock and the listing of a large maildrop touch the disk: a worker does them, the session waits.
    state_ = State::opening;
    stream_.pause_input();
    stream_.set_idle_timeout(0);
    auto found = std::make_shared<std::optional<Result<MaildropScan>>>();
    off_loop([found, dir = *dir] { found->emplace(Maildrop::scan(dir)); },
             [found, user](Session& s) { s.on_maildrop(user, std::move(**found)); });
}

void Session::on_maildrop(const std::string& user, Result<MaildropScan> scan) {
    state_ = State::authorization;
    stream_.set_idle_timeout(server_.settings().idle_timeout);
    stream_.resume_input();
    auto drop = scan ? Maildrop::adopt(std::move(scan.value()), server_.locks()) : Result<Maildrop>(scan.error());
    if (!drop) {
        log::info("%s: login of %s: %s", id_.c_str(), user.c_str(), drop.error().what().c_str());
        reply(err(drop.error()));
        return;
    }
    maildrop_.emplace(std::move(drop.value()));
    login_ = user;
    state_ = State::transaction;
    server_.record_login(user);
    auto [n, octets] = maildrop_->totals();
    log::info("%s: login user=%s from %s%s, %zu messages, %llu octets", id_.c_str(), user.c_str(),
              stream_.peer().c_str(), stream_.is_tls() ? " (TLS)" : "", n, static_cast<unsigned long long>(octets));
    reply(ok("maildrop has " + std::to_string(n) + " messages (" + std::to_string(octets) + " octets)"));
}

// ---- TRANSACTION ----

MaildropMessage* Session::message_or_error(const Command& cmd) {
    uint64_t n = *cmd.number;
    if (n > maildrop_->size()) {
        reply(err("", "no such message, only " + std::to_string(maildrop_->size()) + " messages in maildrop"));
        return nullptr;
    }
    MaildropMessage* m = maildrop_->find(n);
    if (!m) reply(err("", "message " + std::to_string(n) + " already deleted"));
    return m;
}

void Session::cmd_stat() {
    auto [n, octets] = maildrop_->totals();
    reply(ok(std::to_string(n) + " " + std::to_string(octets)));
}

void Session::cmd_list(const Command& cmd, bool uidl) {
    auto line = [&](size_t number, const MaildropMessage& m) {
        return std::to_string(number) + " " + (uidl ? m.uidl : std::to_string(m.vsize));
    };
    if (cmd.number) {
        if (MaildropMessage* m = message_or_error(cmd)) reply(ok(line(*cmd.number, *m)));
        return;
    }
    auto [n, octets] = maildrop_->totals();
    std::string r = uidl ? ok("unique-id listing follows")
                         : ok(std::to_string(n) + " messages (" + std::to_string(octets) + " octets)");
    const auto& all = maildrop_->messages();
    for (size_t i = 0; i < all.size(); ++i)
        if (!all[i].deleted) r += line(i + 1, all[i]) + "\r\n";
    r += ".\r\n";
    reply(r);
}

namespace {

// On a worker: opens the file on the first call, then reads and encodes the next chunk into t.out,
// the whole rest of a small message at once.
template <class Transfer>
void read_chunk(Transfer& t, const std::string& maildir) {
    if (!t.fd.valid() && !t.finished) {
        auto fd = Maildrop::open_file(maildir, t.message);
        if (!fd) {
            t.status = fd.error();
            return;
        }
        t.fd = std::move(fd.value());
    }
    char buf[kReadChunk];
    while (!t.finished && t.out.size() < kReadChunk) {
        ssize_t n = t.encoder.done() ? 0 : ::read(t.fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            t.status = sys_error("read " + t.message.path);
            return;
        }
        if (n == 0) {
            t.encoder.finish(t.out);
            t.finished = true;
            t.fd.reset();
            return;
        }
        t.encoder.feed({buf, static_cast<size_t>(n)}, t.out);
    }
}

}  // namespace

std::shared_ptr<Session::Transfer> Session::make_transfer(const MaildropMessage& m, uint64_t number,
                                                           std::optional<uint64_t> top_lines) {
    auto t = std::make_shared<Transfer>(Transfer{m, number, top_lines, Fd(), MessageEncoder(top_lines)});
    // The +OK goes out with the first chunk, in one send, once the file is open.
    t->out = top_lines ? ok("top of message follows") : ok(std::to_string(m.vsize) + " octets");
    t->out.reserve(t->out.size() + std::min<uint64_t>(m.vsize + m.vsize / 16 + 8, 2 * kReadChunk));
    return t;
}

void Session::cmd_retr(const Command& cmd, std::optional<uint64_t> top_lines) {
    MaildropMessage* m = message_or_error(cmd);
    if (!m) return;
    // Pipelined commands wait until the whole message is out, so replies stay in order.
    stream_.pause_input();
    if (!top_lines && take_ahead(*cmd.number)) {
        if (transfer_->ready) return on_chunk();
        reading_ = true;  // its job is still running: on_read_ahead hands it over
        return;
    }
    transfer_ = make_transfer(*m, *cmd.number, top_lines);
    pump();
}

// The read-ahead of message `number` as the transfer, if there is one; read-aheads of messages
// before it are dropped (the client skipped them), all of them when it is not there.
bool Session::take_ahead(uint64_t number) {
    while (!ahead_.empty() && ahead_.front()->number < number) ahead_.pop_front();
    if (ahead_.empty() || ahead_.front()->number != number) {
        ahead_.clear();
        return false;
    }
    transfer_ = std::move(ahead_.front());
    ahead_.pop_front();
    return true;
}

// Clients mostly RETR one message after the other: the next small ones (at most kReadChunk in all)
// are read in one job while this one travels, so their RETRs are answered from memory.
void Session::read_ahead(uint64_t number) {
    if (reading_ahead_ || !ahead_.empty()) return;
    std::vector<std::shared_ptr<Transfer>> batch;
    uint64_t octets = 0;
    for (; number <= maildrop_->size() && batch.size() < kAheadMessages; ++number) {
        MaildropMessage* m = maildrop_->find(number);
        if (!m) continue;
        if (octets + m->vsize > kReadChunk) break;
        octets += m->vsize;
        batch.push_back(make_transfer(*m, number, std::nullopt));
    }
    if (batch.empty()) return;
    ahead_.assign(batch.begin(), batch.end());
    reading_ahead_ = true;
    off_loop([batch, maildir = maildrop_->maildir()] {
        for (const auto& t : batch) read_chunk(*t, maildir);
    }, [batch](Session& s) { s.on_read_ahead(batch); });
}

void Session::on_read_ahead(const std::vector<std::shared_ptr<Transfer>>& batch) {
    reading_ahead_ = false;
    for (const auto& t : batch) t->ready = true;
    // A RETR that took one of them while they were being read waits for this.
    if (transfer_ && reading_ && std::find(batch.begin(), batch.end(), transfer_) != batch.end()) on_chunk();
}

// Asks a worker for the next chunk while the client takes the output: at most about kBacklogLow
// plus a chunk of the message is ever buffered, however large it is.
void Session::pump() {
    if (!transfer_ || reading_ || stream_.closing() || stream_.output_pending() > kBacklogLow) return;
    reading_ = true;
    off_loop([t = transfer_, maildir = maildrop_->maildir()] { read_chunk(*t, maildir); },
             [](Session& s) { s.on_chunk(); });
}

void Session::on_chunk() {
    reading_ = false;
    std::shared_ptr<Transfer> t = transfer_;
    if (!t || stream_.closing()) return;
    MaildropMessage* m = maildrop_->find(t->number);
    if (!t->status) {
        transfer_.reset();
        if (!t->started) {
            log::warnx("%s: user=%s %s: %s", id_.c_str(), login_.c_str(), t->message.base.c_str(), t->status.error().what().c_str());
            reply(err(t->status.error()));
            stream_.resume_input();
            return;
        }
        // The +OK is out: only a dropped connection tells the client the message is incomplete.
        log::warnx("%s: user=%s %s: %s while sending", id_.c_str(), login_.c_str(), t->message.base.c_str(), t->status.error().what().c_str());
        stream_.abort("read error on a message file");
        return;
    }
    if (!t->started) {
        t->started = true;
        if (m) m->path = t->message.path;  // where another reader may have moved it
        if (!t->top_lines && m) {
            m->retrieved = true;
            ++retrieved_;
        }
    }
    stream_.write(t->out);
    t->out.clear();
    if (!t->finished) return pump();
    transfer_.reset();
    if (!t->top_lines && state_ == State::transaction) read_ahead(t->number + 1);
    stream_.resume_input();  // the pipelined commands that waited
}

void Session::cmd_dele(const Command& cmd) {
    MaildropMessage* m = message_or_error(cmd);
    if (!m) return;
    m->deleted = true;
    ++deleted_;
    reply(ok("message " + std::to_string(*cmd.number) + " deleted"));
}

void Session::cmd_rset() {
    maildrop_->reset();
    deleted_ = 0;
    auto [n, octets] = maildrop_->totals();
    reply(ok("maildrop has " + std::to_string(n) + " messages (" + std::to_string(octets) + " octets)"));
}

void Session::cmd_quit() {
    if (state_ != State::transaction) {
        state_ = State::done;
        reply(ok("ferry POP3 server signing off"));
        stream_.close("QUIT");
        return;
    }
    // UPDATE state (RFC 1939 section 6): the removals and the index sync run on a worker.
    state_ = State::done;
    stream_.pause_input();
    stream_.set_idle_timeout(0);
    struct Update {
        std::optional<Maildrop> drop;
        bool expire0 = false;
        UpdateResult result;
        size_t left = 0;
    };
    auto u = std::make_shared<Update>();
    u->drop.emplace(std::move(*maildrop_));
    u->expire0 = server_.settings().expire == "0";
    maildrop_.reset();
    off_loop([u] {
        u->result = u->drop->commit(u->expire0);
        u->left = u->drop->totals().first;
    }, [u](Session& s) {
        u->drop.reset();  // unlock before the client can log in again
        s.on_update(u->result, u->left);
    });
}

void Session::on_update(const UpdateResult& u, size_t left) {
    log::info("%s: logout user=%s retrieved=%llu deleted=%zu failed=%zu", id_.c_str(), login_.c_str(),
              static_cast<unsigned long long>(retrieved_), u.removed, u.failed);
    if (stream_.closing()) return;
    if (u.failed > 0)
        reply(err(kSysTemp, "some deleted messages not removed"));
    else
        reply(ok("ferry POP3 server signing off (" + std::to_string(left) + " messages left)"));
    stream_.close("QUIT");
}

}  // namespace ferry::pop3
