// One IMAP connection: not authenticated, authenticated and logout states (RFC 9051 section 3) on a ferry::Stream.
#include "imapd/session.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "common/base/log.hpp"
#include "common/event/tls_accept.hpp"
#include "common/store/folders.hpp"
#include "common/store/maildir.hpp"
#include "imapd/server.hpp"

namespace ferry::imap {

namespace {
// Extensions this slice implements; LOGIN/AUTH= and STARTTLS depend on the connection.
constexpr const char* kCapabilities = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE NAMESPACE SPECIAL-USE CHILDREN STATUS=SIZE UNSELECT UIDPLUS MOVE IDLE CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS BINARY";
constexpr size_t kBacklogHigh = 1 << 20;   // stop taking commands above this much unsent output
constexpr size_t kBacklogLow = 256 << 10;  // and take them again below this
// imapd_command_deadline grows by a second per this many bytes, so a large APPEND at a modest
// rate is no trickle, while one byte a second gains nothing.
constexpr uint64_t kDeadlineRate = 1024;
}  // namespace

Session::Session(Server& server, Fd fd, bool implicit_tls, std::string id)
    : server_(server), stream_(server.base(), std::move(fd), this), id_(std::move(id)), implicit_tls_(implicit_tls),
      reader_(server.settings().limits, LiteralMode::literal_plus),
      login_check_(server.auth(), stream_, [this](const AuthResult& r) { on_auth_result(r); }),
      sasl_(server.auth(), login_check_, [this](const std::string& c) {
          reader_.read_line();
          reply("+ " + c + "\r\n");
      }),
      deadline_(server.base(), server.settings().command_deadline, kDeadlineRate, [this] {
          log::info("%s: command not complete within imapd_command_deadline from %s", id_.c_str(), stream_.peer().c_str());
          bye("command not complete in time", "command deadline exceeded");
      }) {
    stream_.set_output_low_water(kBacklogLow);
    resume_ev_.reset(evtimer_new(server.base(), &Session::on_resume, this));
    if (!resume_ev_) log::panic("%s: evtimer_new failed", id_.c_str());
}

Session::~Session() = default;

void Session::start() {
    log::info("%s: connect from %s%s", id_.c_str(), stream_.peer().c_str(), implicit_tls_ ? " (imaps)" : "");
    if (!implicit_tls_) return greet();
    accept_tls(stream_, *server_.tls(), server_.settings().handshake_timeout, id_, "TLS established", [this] { greet(); });
}

void Session::greet() {
    state_ = State::not_authenticated;
    stream_.set_idle_timeout(server_.settings().idle_timeout);
    reply("* OK [CAPABILITY " + capabilities() + "] ferry IMAP server ready on " + server_.settings().hostname +
          "\r\n");
}

bool Session::plaintext_ok() const {
    return plaintext_allowed(server_.settings().plaintext_auth, stream_.is_tls(), stream_.peer_is_loopback());
}

std::string Session::capabilities() const {
    std::string c = kCapabilities;
    if (state_ == State::not_authenticated || state_ == State::handshake) {
        if (server_.tls() && !stream_.is_tls()) c += " STARTTLS";
        // RFC 9051 section 6.2.3: no login over plain text where plaintext_auth forbids it.
        c += plaintext_ok() ? " AUTH=PLAIN AUTH=LOGIN AUTH=SCRAM-SHA-256" : " LOGINDISABLED";
    }
    return c;
}

void Session::tagged(const std::string& status, std::string_view text) {
    std::string line = tag_ + " " + status + " ";
    line += text;
    line += "\r\n";
    reply(line);
}

// A zero timeout, not event_active: the loop polls the other connections before the next slice runs.
void Session::resume_later() {
    timeval now{0, 0};
    event_add(resume_ev_.get(), &now);
}

void Session::on_resume(evutil_socket_t, short, void* arg) noexcept {
    auto* s = static_cast<Session*>(arg);
    if (s->stream_.closing()) return;
    if (s->fetch_) s->fetch_produce();
    else if (s->search_) s->search_step();
}

void Session::on_close(Stream&, const std::string& reason) noexcept {
    log::info("%s: disconnect from %s%s%s (%s)", id_.c_str(), stream_.peer().c_str(), login_.empty() ? "" : " user=",
              login_.c_str(), reason.c_str());
    login_check_.reset();
    idle_watch_.reset();
    deadline_.end();
    server_.session_closed(this);  // destroyed from the loop, after this returns
}

void Session::on_timeout(Stream& stream) noexcept {
    log::info("%s: idle timeout", id_.c_str());
    if (state_ == State::handshake || fetch_cut("idle timeout")) return stream.abort("idle timeout");
    reply("* BYE Autologout; idle for too long\r\n");
    stream.close("idle timeout");
}

void Session::on_lifetime_expired() { bye("session lifetime exceeded", "session lifetime exceeded"); }

void Session::on_stop() { bye("server shutting down", "server stopping"); }

// Ends the session with an untagged BYE; during a TLS handshake there is no channel to say it on.
void Session::bye(const std::string& text, const std::string& reason) {
    if (stream_.closing()) return;
    deadline_.end();
    if (state_ == State::handshake || fetch_cut(reason)) return stream_.abort(reason);
    reply("* BYE " + text + "\r\n");
    stream_.close(reason);
}

void Session::on_input(Stream& stream) noexcept {
    evbuffer* in = stream.input();
    size_t n = evbuffer_get_length(in);
    if (n > 0) {
        size_t at = pending_.size();
        pending_.resize(at + n);
        evbuffer_remove(in, pending_.data() + at, n);
    }
    read_commands();
    track_deadline();
    deadline_.add(n);
}

// A command counts from its first byte to its end, while the session waits for the client.
void Session::track_deadline() {
    bool reading = state_ == State::not_authenticated || state_ == State::sasl || state_ == State::authenticated ||
                   state_ == State::selected || state_ == State::idle;
    bool partial = !pending_.empty() || !reader_.between_commands();
    if (reading && partial && !backlogged_ && !busy() && !stream_.closing()) deadline_.begin();
    else deadline_.end();
}

// The client stopped reading: take its next commands once it has read most of what we sent.
void Session::on_output_low(Stream& stream) noexcept {
    // Not fetch_produce from here: the stream calls this through event_active after each write it
    // drains, and libevent runs such events in the same pass, so calling on would never poll the
    // other connections. The timer goes through the loop's poll first.
    if (fetch_) return resume_later();
    if (!backlogged_ || stream.closing()) return;
    backlogged_ = false;
    stream.resume_input();
    read_commands();
    track_deadline();
}

void Session::read_commands() {
    while (!stream_.closing() && pending_at_ < pending_.size() && !busy() &&
           (state_ == State::not_authenticated || state_ == State::sasl || state_ == State::authenticated ||
            state_ == State::selected || state_ == State::idle)) {
        if (stream_.output_pending() >= kBacklogHigh) {
            backlogged_ = true;
            stream_.pause_input();
            break;
        }
        std::string_view in = std::string_view(pending_).substr(pending_at_);
        Step step = reader_.next(in);
        pending_at_ = pending_.size() - in.size();
        switch (step.kind) {
            case Step::Kind::need_more:
                continue;
            case Step::Kind::continuation:
                reply("+ Ready for literal data\r\n");
                continue;
            case Step::Kind::error:
                on_read_error(step.error);
                continue;
            case Step::Kind::line:
                if (state_ == State::sasl) after_sasl(sasl_.respond(step.line));
                else if (state_ == State::idle) idle_line(step.line);
                continue;
            case Step::Kind::command: {
                std::string tag = step.command.tag;
                auto cmd = parse_command(std::move(step.command), reader_.limits());
                if (!cmd) {
                    log::debug("%s: bad command: %s", id_.c_str(), cmd.error().text.c_str());
                    reply(tag + " BAD " + cmd.error().text + "\r\n");
                    continue;
                }
                dispatch(*cmd);
                continue;
            }
        }
    }
    // Consumed input is erased once here, not per command: a pipelined burst costs O(bytes).
    pending_.erase(0, std::min(pending_at_, pending_.size()));
    pending_at_ = 0;
    // An idle session keeps no buffer the size of the last burst.
    if (pending_.empty() && pending_.capacity() > 4096) std::string().swap(pending_);
}

void Session::on_read_error(const ReadError& e) {
    std::string head = e.tag.empty() ? "*" : e.tag;
    bool no = e.kind == ReadError::Kind::too_big && e.action == ReadError::Action::resync && !e.tag.empty();
    std::string code = e.kind == ReadError::Kind::too_big ? "[TOOBIG] " : "";
    reply(head + (no ? " NO " : " BAD ") + code + e.text + "\r\n");
    if (state_ == State::sasl) {
        sasl_.abort();
        state_ = State::not_authenticated;
    }
    if (e.action == ReadError::Action::close) bye("too much invalid input", "invalid input");
}

void Session::dispatch(const Command& cmd) {
    tag_ = cmd.tag;
    bool authed = state_ == State::authenticated || state_ == State::selected;
    bool sel = state_ == State::selected;
    if (cmd.verb == Verb::login || cmd.verb == Verb::authenticate) log::debug("%s: < %s %s", id_.c_str(), cmd.tag.c_str(), cmd.name.c_str());
    // Keywords another session created since: a FETCH may show them only after a FLAGS response
    // named them (RFC 9051 section 7.3.5), and FETCH reports no other change.
    if (std::string k = sel ? new_keywords() : std::string(); !k.empty()) reply(k);
    switch (cmd.verb) {
        case Verb::capability: return cmd_capability(cmd);
        case Verb::noop:
        case Verb::check:
            if (cmd.verb == Verb::check && !sel) break;
            if (sel) report_changes(true);
            return tagged("OK", cmd.name + " completed");
        case Verb::logout: return cmd_logout(cmd);
        case Verb::id: return cmd_id(cmd);
        case Verb::starttls:
            if (authed) break;
            return cmd_starttls(cmd);
        case Verb::login:
            if (authed) break;
            return cmd_login(cmd);
        case Verb::authenticate:
            if (authed) break;
            return cmd_authenticate(cmd);
        case Verb::enable:
            if (!authed) break;
            return cmd_enable(cmd);
        case Verb::namespace_:
            if (!authed) break;
            return cmd_namespace(cmd);
        case Verb::list:
            if (!authed) break;
            return cmd_list(cmd);
        case Verb::lsub:
            if (!authed) break;
            return cmd_lsub(cmd);
        case Verb::create:
            if (!authed) break;
            return cmd_create(cmd);
        case Verb::delete_:
            if (!authed) break;
            return cmd_delete(cmd);
        case Verb::rename:
            if (!authed) break;
            return cmd_rename(cmd);
        case Verb::subscribe:
        case Verb::unsubscribe:
            if (!authed) break;
            return cmd_subscribe(cmd, cmd.verb == Verb::subscribe);
        case Verb::status:
            if (!authed) break;
            return cmd_status(cmd);
        case Verb::select:
        case Verb::examine:
            if (!authed) break;
            return cmd_select(cmd);
        case Verb::idle:
            if (!authed) break;
            return cmd_idle(cmd);
        case Verb::append:
            if (!authed) break;
            return cmd_append(cmd);
        case Verb::copy:
        case Verb::move:
            if (!sel) break;
            return cmd_copy(cmd);
        case Verb::search:
            if (!sel) break;
            return cmd_search(cmd);
        case Verb::fetch:
            if (!sel) break;
            return cmd_fetch(cmd);
        case Verb::store:
            if (!sel) break;
            return cmd_store(cmd);
        case Verb::expunge:
            if (!sel) break;
            return cmd_expunge(cmd);
        case Verb::close:
        case Verb::unselect:
            if (!sel) break;
            close_mailbox(cmd.verb == Verb::close);
            return tagged("OK", cmd.name + " completed");
        default:
            if (!authed) break;
            return tagged("NO", "[CANNOT] " + cmd.name + " is not implemented yet");
    }
    tagged("BAD", sel ? cmd.name + " not valid now" : authed ? cmd.name + " not valid in this state" : cmd.name + " not valid before login");
}

// RFC 2177: the watch is taken before the first report, so no change falls between the two.
void Session::cmd_idle(const Command&) {
    idle_from_ = state_;
    state_ = State::idle;
    reader_.read_line();
    reply("+ idling\r\n");
    if (idle_from_ != State::selected) return;
    idle_watch_ = server_.watcher().watch(index_->maildir(), this);
    report_changes(true);
}

void Session::on_folder_changed() noexcept {
    if (state_ != State::idle || idle_from_ != State::selected || stream_.closing()) return;
    server_.sync_shared(*index_);
    report_changes(true, false);
}

void Session::idle_line(std::string_view line) {
    idle_watch_.reset();
    state_ = idle_from_;
    if (!is_idle_done(line)) return tagged("BAD", "expected DONE");
    if (state_ == State::selected) report_changes(true);
    tagged("OK", "IDLE terminated");
}

void Session::cmd_capability(const Command&) {
    reply("* CAPABILITY " + capabilities() + "\r\n");
    tagged("OK", "CAPABILITY completed");
}

void Session::cmd_logout(const Command&) {
    state_ = State::logout;
    reply("* BYE ferry IMAP server logging out\r\n");
    tagged("OK", "LOGOUT completed");
    stream_.close("LOGOUT");
}

void Session::cmd_id(const Command& cmd) {
    const auto& a = std::get<IdArgs>(cmd.args);
    std::string fields;
    for (const auto& [k, v] : a.fields) fields += (fields.empty() ? "" : " ") + k + "=" + v.value_or("NIL");
    if (!fields.empty()) log::info("%s: ID %s", id_.c_str(), fields.c_str());
    reply("* ID (\"name\" \"ferry\")\r\n");
    tagged("OK", "ID completed");
}

void Session::cmd_enable(const Command& cmd) {
    // RFC 5161: ENABLED names what this command turned on; unknown names are ignored.
    std::string enabled;
    for (const auto& c : std::get<EnableArgs>(cmd.args).capabilities) {
        bool* flag = c == "CONDSTORE" ? &condstore_ : c == "QRESYNC" ? &qresync_ : c == "IMAP4REV2" ? &rev2_ : nullptr;
        std::string name = c == "IMAP4REV2" ? "IMAP4rev2" : c;
        if (!flag || enabled.find(" " + name) != std::string::npos) continue;
        *flag = true;
        if (qresync_) condstore_ = true;  // RFC 7162 section 3.2.3: QRESYNC implies CONDSTORE
        enabled += " " + name;
    }
    reply("* ENABLED" + enabled + "\r\n");
    tagged("OK", "ENABLE completed");
}

void Session::cmd_namespace(const Command&) {
    reply("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
    tagged("OK", "NAMESPACE completed");
}

void Session::cmd_starttls(const Command&) {
    if (!server_.tls()) return tagged("NO", "TLS is not available");
    if (stream_.is_tls()) return tagged("BAD", "TLS is already active");
    tagged("OK", "Begin TLS negotiation now");
    state_ = State::handshake;
    pending_.clear();
    pending_at_ = 0;  // commands sent before the handshake must not count (RFC 9051 section 11.1)
    reader_ = CommandReader(server_.settings().limits, LiteralMode::literal_plus);
    accept_tls(stream_, *server_.tls(), server_.settings().handshake_timeout, id_, "STARTTLS", [this] {
        state_ = State::not_authenticated;
        stream_.set_idle_timeout(server_.settings().idle_timeout);
    });
}

void Session::cmd_login(const Command& cmd) {
    if (!plaintext_ok()) return tagged("NO", "[PRIVACYREQUIRED] plaintext login not allowed without TLS; use STARTTLS");
    const auto& a = std::get<LoginArgs>(cmd.args);
    state_ = State::checking;
    login_check_.check_password(a.user, a.password);
}

void Session::cmd_authenticate(const Command& cmd) {
    if (!plaintext_ok()) return tagged("NO", "[PRIVACYREQUIRED] plaintext login not allowed without TLS; use STARTTLS");
    const auto& a = std::get<AuthenticateArgs>(cmd.args);
    std::optional<std::string_view> initial;
    if (a.initial_response) initial = *a.initial_response;  // "=" (empty, RFC 4959) is the exchange's to read
    auto next = sasl_.start(a.mechanism, initial);
    if (!next) return tagged("NO", "unsupported authentication mechanism");
    after_sasl(*next);
}

void Session::after_sasl(SaslLogin::Next next) {
    using Next = SaslLogin::Next;
    state_ = next == Next::respond ? State::sasl : next == Next::checking ? State::checking : State::not_authenticated;
    if (next != Next::failed) return;
    // RFC 3501 section 6.2.2: a cancelled exchange ends with BAD, as does one the server rejects.
    tagged("BAD", sasl_.cancelled() ? "AUTHENTICATE cancelled" : sasl_.error().text);
}

// The account's Maildir, with its default folders the first time (ferry-mailstore(5)).
bool Session::open_account() {
    auto dir = maildir::account_maildir(server_.settings().mail_dir, login_);
    if (!dir) {
        log::warnx("%s: %s: %s", id_.c_str(), login_.c_str(), dir.error().what().c_str());
        return false;
    }
    if (auto r = store::ensure_account(*dir); !r) {
        log::warnx("%s: %s: %s", id_.c_str(), login_.c_str(), r.error().what().c_str());
        return false;
    }
    root_ = *dir;
    return true;
}

void Session::login_ok(const std::string& user) {
    login_ = user;
    if (!open_account()) {
        login_.clear();
        return tagged("NO", "[UNAVAILABLE] mailbox unavailable");
    }
    state_ = State::authenticated;
    log::info("%s: login user=%s from %s%s", id_.c_str(), login_.c_str(), stream_.peer().c_str(),
              stream_.is_tls() ? " (TLS)" : "");
    tagged("OK", "[CAPABILITY " + capabilities() + "] logged in");
}

void Session::on_auth_result(const AuthResult& r) {
    state_ = State::not_authenticated;
    stream_.set_idle_timeout(server_.settings().idle_timeout);
    switch (r.status) {
        case AuthResult::ok:
            login_ok(r.user);
            break;
        case AuthResult::failed:
            log::info("%s: login failed from %s: %s", id_.c_str(), stream_.peer().c_str(), r.detail.c_str());
            tagged("NO", "[AUTHENTICATIONFAILED] authentication failed");
            break;
        case AuthResult::refused:
            log::warnx("%s: too many failed logins from %s, closing", id_.c_str(), stream_.peer().c_str());
            tagged("NO", "[AUTHENTICATIONFAILED] too many failed logins; try again later");
            return bye("too many failed logins", "too many failed logins");
        case AuthResult::tempfail:
            log::warnx("%s: login from %s: %s", id_.c_str(), stream_.peer().c_str(), r.detail.c_str());
            tagged("NO", "[UNAVAILABLE] authentication temporarily unavailable");
            break;
    }
    stream_.resume_input();
    read_commands();  // commands pipelined behind the login
}

}  // namespace ferry::imap
