// ferry-smtpd's command table: per verb, a check step (syntax and state -> reply) and a proceed step.
#include "mta/smtpd/commands.hpp"

#include <vector>

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

void proceed_ehlo(Session& s, const smtp::Command& cmd, const std::string&) {
    s.set_helo(cmd.arg, true);
    std::vector<std::string> lines = {s.settings().hostname, "PIPELINING",
                                      "SIZE " + std::to_string(s.server().policy().advertised_size()),
                                      "8BITMIME", "ENHANCEDSTATUSCODES"};
    // STARTTLS (RFC 3207) and AUTH (RFC 4954) are announced here once common/tls and common/sasl
    // are wired in, depending on s.kind() and whether the session is already encrypted.
    s.reply_lines(250, lines);
}

Checked check_mail(Session& s, const smtp::Command& cmd) {
    if (!s.greeted()) return out_of_sequence("Error: send HELO/EHLO first");
    if (s.transaction().active) return out_of_sequence("Error: nested MAIL command");
    if (cmd.params.size) {
        if (auto r = s.server().policy().declared_size(*cmd.params.size); !r) return r.error();
    }
    // AUTH= from a client that has not logged in is ignored (RFC 4954 5).
    return kOk;
}

void proceed_mail(Session& s, const smtp::Command& cmd, const std::string&) {
    s.transaction().active = true;
    s.transaction().sender = cmd.path.mailbox();
    s.reply(250, "2.1.0", "Ok");
}

Checked check_rcpt(Session& s, const smtp::Command& cmd) {
    if (!s.transaction().active) return out_of_sequence("Error: need MAIL command");
    if (s.transaction().recipients.size() >= s.settings().max_recipients)
        return make_error(452, "4.5.3", "Error: too many recipients");
    return s.server().policy().recipient(cmd.path, s.authenticated());
}

void proceed_rcpt(Session& s, const smtp::Command&, const std::string& address) {
    s.transaction().recipients.push_back(address);
    s.reply(250, "2.1.5", "Ok");
}

Checked check_data(Session& s, const smtp::Command&) {
    if (!s.transaction().active) return out_of_sequence("Error: need MAIL command");
    // RFC 2920 3.1: with pipelining, DATA after only refused RCPTs is 554.
    if (s.transaction().recipients.empty()) return make_error(554, "5.5.1", "Error: no valid recipients");
    return kOk;
}

void proceed_data(Session& s, const smtp::Command&, const std::string&) { s.begin_data(); }

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
    s.reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP; see ferry-smtpd(8)");
}

// Known verbs of extensions this server does not offer (yet): a clear 502, not "unrecognized".
Checked check_unoffered(Session&, const smtp::Command&) { return not_implemented(); }
void proceed_never(Session&, const smtp::Command&, const std::string&) {}

const CommandSpec kCommands[] = {
    {"EHLO", check_helo, proceed_ehlo},
    {"HELO", check_helo, proceed_helo},
    {"MAIL", check_mail, proceed_mail},
    {"RCPT", check_rcpt, proceed_rcpt},
    {"DATA", check_data, proceed_data},
    {"RSET", check_none, proceed_rset},
    {"NOOP", check_none, proceed_noop},
    {"QUIT", check_none, proceed_quit},
    {"VRFY", check_vrfy, proceed_vrfy},
    {"HELP", check_none, proceed_help},
    {"EXPN", check_unoffered, proceed_never},
    {"STARTTLS", check_unoffered, proceed_never},
    {"AUTH", check_unoffered, proceed_never},
    {"BDAT", check_unoffered, proceed_never},
    {"ETRN", check_unoffered, proceed_never},
};

}  // namespace

const CommandSpec* find_command(std::string_view verb) {
    for (const auto& c : kCommands)
        if (c.verb == verb) return &c;
    return nullptr;
}

}  // namespace ferry::smtpd
