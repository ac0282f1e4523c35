// ferry-smtpd's command table: per verb, a check step (syntax and state -> reply) and a proceed step.
#include "mta/smtpd/commands.hpp"

#include <optional>
#include <string_view>
#include <vector>

#include "common/auth/sasl.hpp"
#include "mta/smtpd/extensions.hpp"
#include "mta/smtpd/session.hpp"

namespace ferry::smtpd {

namespace {

using Checked = Result<std::string>;
const Checked kOk = std::string();

Error out_of_sequence(std::string text) { return make_error(503, "5.5.1", std::move(text)); }
Error not_implemented() { return make_error(502, "5.5.1", "Error: command not implemented"); }

// HELO/EHLO argument: one word of printable ASCII. Strict domain syntax is not demanded: many
// real clients send bare host names, and RFC 5321 4.1.4 forbids refusing mail over it.
Checked check_helo(Session&, const smtp::Command& cmd) {
    if (cmd.arg.size() > 255) return make_error(501, "5.5.4", "Syntax: hostname too long");
    for (char c : cmd.arg)
        if (c <= 0x20 || c >= 0x7f) return make_error(501, "5.5.4", "Syntax: " + cmd.verb + " hostname");
    return kOk;
}

void proceed_helo(Session& s, const smtp::Command& cmd, const std::string&) {
    s.set_helo(cmd.arg, false);
    s.reply(250, "", s.settings().hostname);
}

Offers session_offers(Session& s) {
    return offers(s.server().tls().has_value(), s.tls_active(), s.plaintext_auth_ok());
}

void proceed_ehlo(Session& s, const smtp::Command& cmd, const std::string&) {
    s.set_helo(cmd.arg, true);
    s.reply_lines(250, ehlo_lines(s.settings().hostname, s.server().policy().advertised_size(), session_offers(s)));
}

Checked check_mail(Session& s, const smtp::Command& cmd) {
    if (!s.greeted()) return out_of_sequence("Error: send HELO/EHLO first");
    if (s.transaction().active) return out_of_sequence("Error: nested MAIL command");
    // RFC 6409 4.3 / RFC 4954 6: submission takes mail only from a client that logged in.
    if (requires_auth(s.kind()) && !s.authenticated()) return make_error(530, "5.7.0", "Authentication required");
    if (cmd.params.size) {
        if (auto r = s.server().policy().declared_size(*cmd.params.size); !r) return r.error();
    }
    // A client that logged in may send only as itself or one of its aliases (RFC 6409 6.1).
    if (s.authenticated()) {
        if (auto r = s.server().policy().sender(cmd.path, s.auth_user()); !r) return r.error();
    }
    // AUTH= is not used for anything: a logged-in client is known, and others' are ignored (RFC 4954 5).
    return kOk;
}

void proceed_mail(Session& s, const smtp::Command& cmd, const std::string&) {
    s.transaction().active = true;
    s.transaction().sender = cmd.path.mailbox();
    s.transaction().params = cmd.params;
    s.begin_mail();
}

Checked check_rcpt(Session& s, const smtp::Command& cmd) {
    if (!s.transaction().active) return out_of_sequence("Error: need MAIL command");
    // The queue file's envelope is written with the first chunk: a later recipient would be lost.
    if (s.transaction().bdat) return out_of_sequence("Error: RCPT after BDAT in one transaction");
    if (s.transaction().recipients.size() >= s.settings().max_recipients)
        return make_error(452, "4.5.3", "Error: too many recipients");
    // RFC 6531 3.6.1: a UTF-8 address only in a transaction that said SMTPUTF8.
    bool utf8 = s.transaction().params.smtputf8;
    if (cmd.path.utf8 && !utf8) return smtp::utf8_without_smtputf8();
    return s.server().policy().recipient(cmd.path, s.may_relay(), utf8 ? AddressForm::utf8 : AddressForm::ascii);
}

void proceed_rcpt(Session& s, const smtp::Command& cmd, const std::string& address) {
    s.transaction().recipients.push_back(address);
    s.transaction().rcpt_params.push_back(cmd.rcpt);
    s.reply(250, "2.1.5", "Ok");
}

Checked check_data(Session& s, const smtp::Command&) {
    if (!s.transaction().active) return out_of_sequence("Error: need MAIL command");
    // RFC 3030 2: DATA and BDAT do not mix in one transaction.
    if (s.transaction().bdat) return out_of_sequence("Error: DATA after BDAT in one transaction");
    // RFC 2920 3.1: with pipelining, DATA after only refused RCPTs is 554.
    if (s.transaction().recipients.empty()) return make_error(554, "5.5.1", "Error: no valid recipients");
    return kOk;
}

void proceed_data(Session& s, const smtp::Command&, const std::string&) { s.begin_data(); }

// BDAT (RFC 3030). A refused one still has its chunk read and dropped (Session::skip_chunk).
Checked check_bdat(Session& s, const smtp::Command&) {
    if (!s.transaction().active) return out_of_sequence("Error: need MAIL command");
    if (s.transaction().recipients.empty()) return out_of_sequence("Error: need RCPT command");
    return kOk;
}

void proceed_bdat(Session& s, const smtp::Command& cmd, const std::string&) { s.begin_chunk(cmd.bdat); }

Checked check_none(Session&, const smtp::Command&) { return kOk; }

void proceed_rset(Session& s, const smtp::Command&, const std::string&) {
    s.reset_transaction();
    s.reply(250, "2.0.0", "Ok");
}

void proceed_noop(Session& s, const smtp::Command&, const std::string&) { s.reply(250, "2.0.0", "Ok"); }

void proceed_quit(Session& s, const smtp::Command&, const std::string&) { s.quit(); }

Checked check_vrfy(Session&, const smtp::Command& cmd) {
    if (cmd.arg.empty()) return make_error(501, "5.5.4", "Syntax: VRFY address");
    return kOk;
}

// RFC 5321 3.5.3: 252 says neither yes nor no, so VRFY cannot be used to harvest addresses.
void proceed_vrfy(Session& s, const smtp::Command&, const std::string&) {
    s.reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
}

void proceed_help(Session& s, const smtp::Command&, const std::string&) {
    s.reply(214, "2.0.0", "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP; see ferry-smtpd(8)");
}

// STARTTLS (RFC 3207). Arguments are refused by the parser (501 5.5.4). Offered only with a certificate.
Checked check_starttls(Session& s, const smtp::Command&) {
    if (!s.server().tls()) return not_implemented();
    if (s.tls_active()) return out_of_sequence("Error: TLS already active");
    return kOk;
}

void proceed_starttls(Session& s, const smtp::Command&, const std::string&) { s.start_tls(); }

// "AUTH mechanism [initial-response]" split in two; nullopt for anything else.
struct AuthArgs {
    std::string_view mechanism;
    std::optional<std::string_view> initial_response;
};
std::optional<AuthArgs> split_auth(std::string_view arg) {
    AuthArgs a;
    size_t sp = arg.find(' ');
    a.mechanism = arg.substr(0, sp);
    if (sp != std::string_view::npos) {
        std::string_view ir = arg.substr(sp + 1);
        if (ir.empty() || ir.find(' ') != std::string_view::npos) return std::nullopt;
        a.initial_response = ir;
    }
    if (a.mechanism.empty()) return std::nullopt;
    return a;
}

// AUTH (RFC 4954 4): once per session, after EHLO, outside a transaction, where passwords may travel.
Checked check_auth(Session& s, const smtp::Command& cmd) {
    if (!s.greeted() || !s.esmtp()) return out_of_sequence("Error: send EHLO first");
    if (s.authenticated()) return out_of_sequence("Error: already authenticated");
    if (s.transaction().active) return out_of_sequence("Error: MAIL transaction in progress");
    if (!s.plaintext_auth_ok())
        return make_error(538, "5.7.11", "Encryption required for requested authentication mechanism");
    auto args = split_auth(cmd.arg);
    if (!args) return make_error(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
    if (!sasl::parse_mechanism(args->mechanism, true)) return make_error(504, "5.5.4", "Unrecognized authentication type");
    return kOk;
}

void proceed_auth(Session& s, const smtp::Command& cmd, const std::string&) {
    auto args = split_auth(cmd.arg);
    s.start_auth(*sasl::parse_mechanism(args->mechanism, true), args->initial_response);
}

// Known verbs of extensions this server does not offer (yet): a clear 502, not "unrecognized".
Checked check_unoffered(Session&, const smtp::Command&) { return not_implemented(); }
void proceed_never(Session&, const smtp::Command&, const std::string&) {}

const CommandSpec kCommands[] = {
    {"EHLO", kAnyState, check_helo, proceed_ehlo},
    {"HELO", kAnyState, check_helo, proceed_helo},
    {"MAIL", kAnyState, check_mail, proceed_mail},
    {"RCPT", kAnyState, check_rcpt, proceed_rcpt},
    {"DATA", kAnyState, check_data, proceed_data},
    {"RSET", kAnyState, check_none, proceed_rset},
    {"NOOP", kAnyState, check_none, proceed_noop},
    {"QUIT", kAnyState, check_none, proceed_quit},
    {"VRFY", kAnyState, check_vrfy, proceed_vrfy},
    {"HELP", kAnyState, check_none, proceed_help},
    {"EXPN", kAnyState, check_unoffered, proceed_never},
    {"STARTTLS", kAnyState, check_starttls, proceed_starttls},
    {"AUTH", kAnyState, check_auth, proceed_auth},
    {"BDAT", kAnyState, check_bdat, proceed_bdat},
    {"ETRN", kAnyState, check_unoffered, proceed_never},
};

// Every verb is dispatched only between commands (Session::Phase::command), so none needs a
// state mask: their checks answer out-of-sequence commands with texts of their own.
const DispatchReplies kReplies{make_error(500, "5.5.2", "Error: command not recognized"),
                               out_of_sequence("Error: bad sequence of commands")};

}  // namespace

const CommandSpec* find_command(std::string_view verb) { return find_spec(kCommands, verb); }

std::optional<Error> dispatch_command(Session& session, const smtp::Command& cmd) {
    return dispatch(kCommands, std::string_view(cmd.verb), kAnyState, session, cmd, kReplies);
}

}  // namespace ferry::smtpd
