// One ManageSieve connection (RFC 5804): STARTTLS, SASL, then the account's scripts on a ferry::Stream.
#include "mda/managesieve/session.hpp"

#include <algorithm>

#include "common/base/log.hpp"
#include "common/event/tls_accept.hpp"
#include "common/store/maildir.hpp"
#include "mda/managesieve/response.hpp"
#include "mda/managesieve/server.hpp"
#include "mda/sieve/script.hpp"

namespace ferry::managesieve {

Session::Session(Server& server, Fd fd, bool implicit_tls, std::string id)
    : server_(server), stream_(server.base(), std::move(fd), this), id_(std::move(id)), implicit_tls_(implicit_tls),
      deadline_(server.base(), server.settings().command_deadline, 0, [this] {
          log::info("%s: command not complete within managesieve_command_deadline from %s", id_.c_str(),
                    stream_.peer().c_str());
          hang_up(bye("", "command deadline exceeded"), "command deadline exceeded");
      }),
      login_check_(server.auth(), stream_, [this](const AuthResult& r) { on_auth_result(r); }),
      // RFC 5804 section 2.1: a continuation is a string.
      sasl_(server.auth(), login_check_, [this](const std::string& c) { reply(string_token(c) + "\r\n"); }) {}

Session::~Session() = default;

void Session::start() {
    log::info("%s: connect from %s%s", id_.c_str(), stream_.peer().c_str(), implicit_tls_ ? " (TLS port)" : "");
    if (!implicit_tls_) {
        greet();
        return;
    }
    accept_tls(stream_, *server_.tls(), server_.settings().handshake_timeout, id_, "TLS established",
               [this] { greet(); });
}

// RFC 5804 section 1.7: the greeting is the capability list and OK.
void Session::greet() {
    state_ = State::unauthenticated;
    stream_.set_idle_timeout(server_.settings().idle_timeout);
    reply(capabilities() + ok("ferry ManageSieve server ready on " + server_.settings().hostname));
}

void Session::on_close(Stream&, const std::string& reason) noexcept {
    log::info("%s: disconnect from %s%s%s (%s)", id_.c_str(), stream_.peer().c_str(), login_.empty() ? "" : " user=",
              login_.c_str(), reason.c_str());
    login_check_.reset();
    deadline_.end();
    server_.session_closed(this);  // destroyed from the loop, after this returns
}

void Session::on_timeout(Stream& stream) noexcept {
    log::info("%s: idle timeout", id_.c_str());
    reply(bye("", "idle for too long"));
    stream.close("idle timeout");
}

void Session::on_lifetime_expired() {
    log::info("%s: session lifetime exceeded (managesieve_session_lifetime)", id_.c_str());
    hang_up(bye("TRYLATER", "session lifetime exceeded"), "session lifetime exceeded");
}

void Session::on_stop() { hang_up(bye("TRYLATER", "server shutting down"), "server stopping"); }

// Ends the session with a last line; during a TLS handshake there is no channel to say it on.
void Session::hang_up(const std::string& line, const std::string& reason) {
    if (stream_.closing()) return;
    deadline_.end();
    if (state_ == State::handshake) return stream_.abort(reason);
    state_ = State::done;
    reply(line);
    stream_.close(reason);
}

void Session::track_deadline() {
    bool reading = state_ == State::unauthenticated || state_ == State::sasl || state_ == State::authenticated;
    bool partial = evbuffer_get_length(stream_.input()) > 0 || discard_ > 0 || skip_line_;
    if (reading && partial && !stream_.closing()) deadline_.begin();
    else deadline_.end();
}

void Session::on_input(Stream& stream) noexcept {
    read_commands(stream);
    track_deadline();
}

// Drops what is left of a refused literal or line; false while more of it is still to come.
bool Session::drain_refused(evbuffer* in) {
    if (discard_ > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(discard_, evbuffer_get_length(in)));
        evbuffer_drain(in, n);
        discard_ -= n;
        if (discard_ > 0) return false;
    }
    if (skip_line_) {
        evbuffer_ptr lf = evbuffer_search(in, "\n", 1, nullptr);
        if (lf.pos < 0) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return false;
        }
        evbuffer_drain(in, static_cast<size_t>(lf.pos) + 1);
        skip_line_ = false;
    }
    return true;
}

void Session::read_commands(Stream& stream) {
    evbuffer* in = stream.input();
    const Limits& limits = server_.settings().limits;
    // The longest command the scanner can accept: looking further than this never completes one.
    size_t cap = (limits.max_args + 1) * (limits.max_line + limits.max_literal);
    while (!stream.closing() &&
           (state_ == State::unauthenticated || state_ == State::sasl || state_ == State::authenticated)) {
        if (!drain_refused(in)) return;
        size_t len = std::min(evbuffer_get_length(in), cap);
        if (len == 0) return;
        const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ev_ssize_t>(len)));
        std::string_view view(data, len);
        Scan scan = state_ == State::sasl ? scan_response(view, limits) : scan_command(view, limits);
        if (scan.status == Scan::Status::need_more) return;
        evbuffer_drain(in, scan.consumed);
        if (scan.status == Scan::Status::error) {
            on_scan_error(scan);
            continue;
        }
        if (state_ == State::sasl) {
            after_sasl(sasl_.respond(scan.command.args[0].text));
            continue;
        }
        dispatch(scan.command);
    }
}

void Session::on_scan_error(const Scan& scan) {
    discard_ = scan.discard;
    skip_line_ = scan.skip_line;
    log::info("%s: bad command from %s: %s", id_.c_str(), stream_.peer().c_str(), scan.error.c_str());
    if (state_ == State::sasl) {
        sasl_.abort();
        state_ = State::unauthenticated;
    }
    if (++errors_ >= server_.settings().max_errors) {
        hang_up(bye("", "too many bad commands"), "too many bad commands");
        return;
    }
    reply(no(scan.code, scan.error));
}

const Session::CommandDef Session::kCommands[] = {
    {Verb::capability, kAnyState, nullptr, [](Session& s, const Request&) { s.reply(s.capabilities() + ok()); }},
    {Verb::logout, kAnyState, nullptr, [](Session& s, const Request&) { s.cmd_logout(); }},
    {Verb::noop, kAnyState, nullptr,
     [](Session& s, const Request& r) {
         // RFC 5804 section 2.11: the tag comes back in a TAG response code.
         s.reply(r.strings.empty() ? ok("done") : ok("done", "TAG " + string_token(r.strings[0])));
     }},
    {Verb::starttls, state_bit(State::unauthenticated), nullptr, [](Session& s, const Request&) { s.cmd_starttls(); }},
    {Verb::authenticate, state_bit(State::unauthenticated), nullptr,
     [](Session& s, const Request& r) { s.cmd_authenticate(r); }},
    {Verb::havespace, state_bit(State::authenticated), nullptr, [](Session& s, const Request& r) { s.cmd_havespace(r); }},
    {Verb::putscript, state_bit(State::authenticated), nullptr, [](Session& s, const Request& r) { s.cmd_putscript(r); }},
    {Verb::checkscript, state_bit(State::authenticated), nullptr,
     [](Session& s, const Request& r) { s.cmd_checkscript(r); }},
    {Verb::listscripts, state_bit(State::authenticated), nullptr, [](Session& s, const Request&) { s.cmd_listscripts(); }},
    {Verb::setactive, state_bit(State::authenticated), nullptr, [](Session& s, const Request& r) { s.cmd_setactive(r); }},
    {Verb::getscript, state_bit(State::authenticated), nullptr, [](Session& s, const Request& r) { s.cmd_getscript(r); }},
    {Verb::deletescript, state_bit(State::authenticated), nullptr,
     [](Session& s, const Request& r) { s.cmd_deletescript(r); }},
    {Verb::renamescript, state_bit(State::authenticated), nullptr,
     [](Session& s, const Request& r) { s.cmd_renamescript(r); }},
    {Verb::unauthenticate, state_bit(State::authenticated), nullptr,
     [](Session& s, const Request&) { s.cmd_unauthenticate(); }},
};

void Session::dispatch(const Command& cmd) {
    auto req = interpret(cmd);
    if (!req) {
        log::info("%s: bad command from %s: %s", id_.c_str(), stream_.peer().c_str(), req.error().text.c_str());
        if (++errors_ >= server_.settings().max_errors) return hang_up(bye("", "too many bad commands"), "too many bad commands");
        reply(no("", req.error().text));
        return;
    }
    errors_ = 0;
    // Credentials stay out of the log: AUTHENTICATE is logged by name only.
    log::debug("%s: < %s", id_.c_str(), req->name.c_str());
    static const DispatchReplies before_login{make_error(0, "", "unknown command"),
                                              make_error(0, "", "authenticate first")};
    static const DispatchReplies after_login{make_error(0, "", "unknown command"),
                                             make_error(0, "", "already authenticated")};
    const auto& replies = state_ == State::authenticated ? after_login : before_login;
    if (auto refusal = ferry::dispatch(kCommands, req->verb, state_bit(state_), *this, *req, replies))
        reply(no(refusal->enhanced, refusal->text));
}

// ---- before login ----

bool Session::plaintext_ok() const {
    return plaintext_allowed(server_.settings().plaintext_auth, stream_.is_tls(), stream_.peer_is_loopback());
}

// RFC 5804 section 1.7.
std::string Session::capabilities() const {
    std::string r = "\"IMPLEMENTATION\" \"ferry\"\r\n";
    // SASL offers logins only where plaintext_auth lets them be used (RFC 5804 section 2.1, as popd does).
    r += std::string("\"SASL\" ") + (plaintext_ok() ? string_token(sasl::kMechanismsWithScram) : "\"\"") + "\r\n";
    r += std::string("\"SIEVE\" ") + string_token(kSieveExtensions) + "\r\n";
    if (server_.tls() && !stream_.is_tls() && state_ != State::authenticated) r += "\"STARTTLS\"\r\n";
    r += "\"MAXREDIRECTS\" \"" + std::to_string(server_.settings().max_redirects) + "\"\r\n";
    r += "\"UNAUTHENTICATE\"\r\n";
    if (state_ == State::authenticated) r += "\"OWNER\" " + string_token(login_) + "\r\n";
    r += "\"VERSION\" \"1.0\"\r\n";
    return r;
}

void Session::cmd_starttls() {
    if (!server_.tls()) return reply(no("", "TLS is not available"));
    if (stream_.is_tls()) return reply(no("", "TLS is already active"));
    reply(ok("begin TLS negotiation"));
    state_ = State::handshake;
    // accept_tls drops pipelined input: commands sent before the handshake must not count.
    accept_tls(stream_, *server_.tls(), server_.settings().handshake_timeout, id_, "STARTTLS", [this] {
        state_ = State::unauthenticated;
        stream_.set_idle_timeout(server_.settings().idle_timeout);
        // RFC 5804 section 2.2: the capabilities again, now that the channel is protected.
        reply(capabilities() + ok("TLS negotiation successful"));
    });
}

void Session::cmd_authenticate(const Request& req) {
    if (!plaintext_ok())
        return reply(no("ENCRYPT-NEEDED", "plaintext login not allowed without TLS; use STARTTLS first"));
    std::optional<std::string_view> initial;
    if (req.strings.size() > 1) initial = req.strings[1];
    auto next = sasl_.start(req.strings[0], initial);
    if (!next) return reply(no("", "unsupported authentication mechanism"));
    after_sasl(*next);
}

void Session::after_sasl(SaslLogin::Next next) {
    using Next = SaslLogin::Next;
    state_ = next == Next::respond ? State::sasl : next == Next::checking ? State::checking : State::unauthenticated;
    if (next == Next::failed) reply(no("", sasl_.error().text));
}

void Session::on_auth_result(const AuthResult& r) {
    state_ = State::unauthenticated;
    stream_.set_idle_timeout(server_.settings().idle_timeout);
    stream_.resume_input();
    switch (r.status) {
        case AuthResult::ok:
            login(r.user);
            return;
        case AuthResult::failed:
            log::info("%s: login failed from %s: %s", id_.c_str(), stream_.peer().c_str(), r.detail.c_str());
            reply(no("", "authentication failed"));
            return;
        case AuthResult::refused:
            log::warnx("%s: too many failed logins from %s, closing", id_.c_str(), stream_.peer().c_str());
            hang_up(bye("", "too many failed logins; try again later"), "too many failed logins");
            return;
        case AuthResult::tempfail:
            log::warnx("%s: login from %s: %s", id_.c_str(), stream_.peer().c_str(), r.detail.c_str());
            reply(no("TRYLATER", "authentication temporarily unavailable"));
            return;
    }
}

// The scripts live in the account's Maildir (ferry-mailstore(5)), found as ferry-popd finds it.
void Session::login(const std::string& user) {
    auto dir = maildir::account_maildir(server_.settings().mail_dir, user);
    Result<void> made = dir ? maildir::ensure(*dir) : Result<void>(dir.error());
    if (!made) {
        log::warnx("%s: %s: %s", id_.c_str(), user.c_str(), made.error().what().c_str());
        return reply(no("TRYLATER", "mailbox unavailable"));
    }
    scripts_.emplace(*dir);
    login_ = user;
    state_ = State::authenticated;
    log::info("%s: login user=%s from %s%s", id_.c_str(), user.c_str(), stream_.peer().c_str(),
              stream_.is_tls() ? " (TLS)" : "");
    reply(ok("logged in"));
}

// ---- after login ----

void Session::reply_store_error(const Error& e, const char* what) {
    if (!e.enhanced.empty()) return reply(no(e.enhanced, e.text));  // NONEXISTENT, ACTIVE, ALREADYEXISTS
    if (e.detail.empty()) return reply(no("", e.text));             // an invalid name
    log::warnx("%s: user=%s: %s: %s", id_.c_str(), login_.c_str(), what, e.what().c_str());
    reply(no("TRYLATER", std::string("cannot ") + what + " now"));
}

bool Session::size_ok(uint64_t size) {
    uint64_t max = server_.settings().limits.max_literal;
    if (size <= max) return true;
    reply(no("QUOTA/MAXSIZE", "script larger than the limit of " + std::to_string(max) + " octets"));
    return false;
}

bool Session::compiles(const std::string& text) {
    sieve::CompileLimits limits;
    limits.max_script_size = server_.settings().limits.max_literal;
    limits.max_nesting = server_.settings().max_nesting;
    auto compiled = sieve::compile(text, limits);
    if (!compiled.error) return true;
    reply(no("", compiled.error->text()));
    return false;
}

void Session::cmd_havespace(const Request& req) {
    const std::string& name = req.strings[0];
    if (!store::SieveScripts::valid_name(name)) return reply(no("", "invalid script name"));
    if (!size_ok(*req.number)) return;
    auto all = scripts_->list();
    if (!all) return reply_store_error(all.error(), "list the scripts");
    bool exists = std::any_of(all->begin(), all->end(), [&](const auto& e) { return e.name == name; });
    if (!exists && all->size() >= server_.settings().max_scripts)
        return reply(no("QUOTA/MAXSCRIPTS", "at most " + std::to_string(server_.settings().max_scripts) + " scripts"));
    reply(ok());
}

void Session::cmd_putscript(const Request& req) {
    const std::string& name = req.strings[0];
    const std::string& text = req.strings[1];
    if (!store::SieveScripts::valid_name(name)) return reply(no("", "invalid script name"));
    if (!size_ok(text.size())) return;
    auto all = scripts_->list();
    if (!all) return reply_store_error(all.error(), "list the scripts");
    bool exists = std::any_of(all->begin(), all->end(), [&](const auto& e) { return e.name == name; });
    if (!exists && all->size() >= server_.settings().max_scripts)
        return reply(no("QUOTA/MAXSCRIPTS", "at most " + std::to_string(server_.settings().max_scripts) + " scripts"));
    if (!compiles(text)) return;
    if (auto r = scripts_->put(name, text); !r) return reply_store_error(r.error(), "store the script");
    log::info("%s: user=%s stored script \"%s\" (%zu octets)", id_.c_str(), login_.c_str(), name.c_str(), text.size());
    reply(ok());
}

void Session::cmd_checkscript(const Request& req) {
    if (!size_ok(req.strings[0].size())) return;
    if (compiles(req.strings[0])) reply(ok());
}

void Session::cmd_listscripts() {
    auto all = scripts_->list();
    if (!all) return reply_store_error(all.error(), "list the scripts");
    std::string r;
    for (const auto& e : *all) r += string_token(e.name) + (e.active ? " ACTIVE\r\n" : "\r\n");
    reply(r + ok());
}

void Session::cmd_setactive(const Request& req) {
    if (auto r = scripts_->set_active(req.strings[0]); !r) return reply_store_error(r.error(), "activate the script");
    log::info("%s: user=%s active script \"%s\"", id_.c_str(), login_.c_str(), req.strings[0].c_str());
    reply(ok());
}

void Session::cmd_getscript(const Request& req) {
    auto text = scripts_->get(req.strings[0]);
    if (!text) return reply_store_error(text.error(), "read the script");
    if (!*text) return reply(no("NONEXISTENT", "no such script"));
    // Always a literal: a script has line ends (RFC 5804 section 2.9).
    reply("{" + std::to_string((*text)->size()) + "}\r\n" + **text + "\r\n" + ok());
}

void Session::cmd_deletescript(const Request& req) {
    if (auto r = scripts_->remove(req.strings[0]); !r) return reply_store_error(r.error(), "delete the script");
    log::info("%s: user=%s deleted script \"%s\"", id_.c_str(), login_.c_str(), req.strings[0].c_str());
    reply(ok());
}

void Session::cmd_renamescript(const Request& req) {
    if (auto r = scripts_->rename(req.strings[0], req.strings[1]); !r)
        return reply_store_error(r.error(), "rename the script");
    log::info("%s: user=%s renamed script \"%s\" to \"%s\"", id_.c_str(), login_.c_str(), req.strings[0].c_str(),
              req.strings[1].c_str());
    reply(ok());
}

// RFC 5804 section 2.14.1: back to the state before AUTHENTICATE (TLS stays).
void Session::cmd_unauthenticate() {
    log::info("%s: unauthenticate user=%s", id_.c_str(), login_.c_str());
    scripts_.reset();
    login_.clear();
    state_ = State::unauthenticated;
    reply(ok());
}

void Session::cmd_logout() {
    state_ = State::done;
    reply(ok("logout"));
    stream_.close("LOGOUT");
}

}  // namespace ferry::managesieve
