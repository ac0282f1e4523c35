// SMTP and LMTP protocol pieces as pure functions over bytes (see smtp_proto.hpp).
#include "common/smtp/smtp_proto.hpp"

#include "common/mail/address.hpp"

#include <algorithm>
#include <cstring>
#include <cctype>
#include <limits>

namespace ferry::smtp {

namespace {

Error syntax(std::string text) { return make_error(500, "5.5.2", std::move(text)); }
Error bad_args(std::string text) { return make_error(501, "5.5.4", std::move(text)); }
Error bad_address(std::string text) { return make_error(553, "5.1.3", std::move(text)); }
}  // namespace

Error utf8_without_smtputf8() {
    return make_error(553, "5.6.7", "UTF-8 addresses need the SMTPUTF8 parameter of MAIL FROM (RFC 6531)");
}

bool bdat_unsynchronised(const Error& e) { return e.detail == "bdat-unsync"; }

namespace {

bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_let_dig(char c) { return is_alpha(c) || is_digit(c); }

std::string upper(std::string_view s) {
    std::string r(s);
    for (char& c : r) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return r;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Where the path that starts `s` ends: after the '>' outside any quoted string; npos if unclosed.
size_t path_end(std::string_view s) {
    if (s.empty() || s[0] != '<') {
        size_t sp = s.find(' ');
        return sp == std::string_view::npos ? s.size() : sp;
    }
    bool quoted = false;
    for (size_t i = 1; i < s.size(); ++i) {
        if (quoted && s[i] == '\\') {
            ++i;
        } else if (s[i] == '"') {
            quoted = !quoted;
        } else if (!quoted && s[i] == '>') {
            return i + 1;
        }
    }
    return std::string_view::npos;
}

// Source route "@a,@b" (the part before ':'), checked then ignored as RFC 5321 C asks.
bool is_source_route(std::string_view route) {
    while (!route.empty()) {
        size_t comma = route.find(',');
        std::string_view hop = route.substr(0, comma);
        std::string_view domain = hop.size() < 2 ? std::string_view() : hop.substr(1);
        if (hop.empty() || hop[0] != '@' || !(valid_domain(domain) || is_address_literal(domain))) return false;
        if (comma == std::string_view::npos) return true;
        route.remove_prefix(comma + 1);
        if (route.empty()) return false;
    }
    return false;
}

// "KEY=VALUE" per RFC 5321 esmtp-param: esmtp-keyword ["=" esmtp-value].
bool split_param(std::string_view p, std::string& key, std::string& value, bool& has_value) {
    size_t eq = p.find('=');
    std::string_view k = p.substr(0, eq);
    if (k.empty() || !is_let_dig(k[0])) return false;
    for (char c : k)
        if (!is_let_dig(c) && c != '-') return false;
    key = upper(k);
    has_value = eq != std::string_view::npos;
    value.clear();
    if (!has_value) return true;
    std::string_view v = p.substr(eq + 1);
    if (v.empty()) return false;
    for (char c : v)
        if (c < 33 || c > 126 || c == '=') return false;
    value = std::string(v);
    return true;
}

Result<void> apply_mail_param(MailParams& params, const std::string& key, const std::string& value, bool has_value) {
    if (key == "SIZE") {  // RFC 1870: size-value ::= 1*20DIGIT
        if (params.size) return bad_args("Duplicate SIZE parameter");
        if (!has_value || value.size() > 20) return bad_args("Syntax error in SIZE parameter");
        uint64_t n = 0;
        for (char c : value) {
            if (!is_digit(c)) return bad_args("Syntax error in SIZE parameter");
            uint64_t d = static_cast<uint64_t>(c - '0');
            // A value beyond 2^64 is simply too big: saturate so the size check answers 552.
            n = n > (std::numeric_limits<uint64_t>::max() - d) / 10 ? std::numeric_limits<uint64_t>::max() : n * 10 + d;
        }
        params.size = n;
        return {};
    }
    if (key == "BODY") {  // RFC 6152
        if (params.body != MailParams::Body::unspecified) return bad_args("Duplicate BODY parameter");
        if (has_value && iequals(value, "7BIT")) params.body = MailParams::Body::seven_bit;
        else if (has_value && iequals(value, "8BITMIME")) params.body = MailParams::Body::eight_bit_mime;
        else return bad_args("BODY must be 7BIT or 8BITMIME");
        return {};
    }
    if (key == "AUTH") {  // RFC 4954 5: AUTH=<mailbox as xtext> or AUTH=<>
        if (params.auth) return bad_args("Duplicate AUTH parameter");
        if (!has_value) return bad_args("Syntax error in AUTH parameter");
        params.auth = value;
        return {};
    }
    if (key == "SMTPUTF8") {  // RFC 6531 3.4: no value
        if (params.smtputf8) return bad_args("Duplicate SMTPUTF8 parameter");
        if (has_value) return bad_args("SMTPUTF8 takes no value");
        params.smtputf8 = true;
        return {};
    }
    if (key == "RET") {  // RFC 3461 4.3
        if (params.ret != dsn::Ret::unspecified) return bad_args("Duplicate RET parameter");
        if (has_value && iequals(value, "FULL")) params.ret = dsn::Ret::full;
        else if (has_value && iequals(value, "HDRS")) params.ret = dsn::Ret::hdrs;
        else return bad_args("RET must be FULL or HDRS");
        return {};
    }
    if (key == "ENVID") {  // RFC 3461 4.4
        if (params.envid) return bad_args("Duplicate ENVID parameter");
        auto id = has_value ? dsn::parse_envid(value) : std::nullopt;
        if (!id) return bad_args("Syntax error in ENVID parameter");
        params.envid = std::move(*id);
        return {};
    }
    return make_error(555, "5.5.4", "Unsupported parameter " + key);
}

Result<void> apply_rcpt_param(RcptParams& params, const std::string& key, const std::string& value, bool has_value) {
    if (key == "NOTIFY") {  // RFC 3461 4.1
        if (params.notify) return bad_args("Duplicate NOTIFY parameter");
        auto bits = has_value ? dsn::parse_notify(value) : std::nullopt;
        if (!bits) return bad_args("NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY");
        params.notify = *bits;
        return {};
    }
    if (key == "ORCPT") {  // RFC 3461 4.2
        if (params.orcpt) return bad_args("Duplicate ORCPT parameter");
        auto orcpt = has_value ? dsn::parse_orcpt(value) : std::nullopt;
        if (!orcpt) return bad_args("Syntax error in ORCPT parameter");
        params.orcpt = std::move(*orcpt);
        return {};
    }
    return make_error(555, "5.5.4", "Unsupported parameter " + key);
}

bool has_utf8(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 0x80) return true;
    return false;
}

// "BDAT size [LAST]" (RFC 3030 2): size is 1*DIGIT.
Result<Bdat> parse_bdat(std::string_view arg) {
    size_t sp = arg.find(' ');
    std::string_view digits = arg.substr(0, sp);
    Bdat b;
    if (digits.empty() || digits.size() > 16) return make_error(501, "5.5.4", "Syntax: BDAT size [LAST]", "bdat-unsync");
    for (char c : digits) {
        if (!is_digit(c)) return make_error(501, "5.5.4", "Syntax: BDAT size [LAST]", "bdat-unsync");
        b.size = b.size * 10 + static_cast<uint64_t>(c - '0');
    }
    if (b.size > kMaxBdatChunk) return make_error(501, "5.5.4", "BDAT chunk size too large", "bdat-unsync");
    if (sp != std::string_view::npos) {
        // A client that sends what it means by something else cannot be trusted with the size either.
        if (!iequals(trim(arg.substr(sp + 1)), "LAST"))
            return make_error(501, "5.5.4", "Syntax: BDAT size [LAST]", "bdat-unsync");
        b.last = true;
    }
    return b;
}

// The text after "MAIL FROM:" or "RCPT TO:": a path, then ESMTP parameters.
Result<void> parse_path_and_params(Command& cmd, std::string_view rest, bool is_mail, const Limits& limits) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);  // "MAIL FROM: <a@b>", as many clients send
    if (rest.empty()) return bad_args(is_mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>");
    size_t end = path_end(rest);
    if (end == std::string_view::npos) {
        if (rest.size() > limits.max_path) return make_error(501, "5.1.3", "Path too long");
        return bad_address("Syntax error in address: missing '>'");
    }
    std::string_view text = rest.substr(0, end);
    if (!is_mail && iequals(text, "<postmaster>")) {  // RFC 5321 4.5.1: must be accepted without a domain
        cmd.path.local = "Postmaster";
    } else {
        // Parsed in the UTF-8 form; whether the transaction allows it is decided below (MAIL) or
        // by the caller, who knows the transaction (RCPT).
        auto path = parse_path(text, is_mail, limits, AddressForm::utf8);
        if (!path) return path.error();
        cmd.path = std::move(path.value());
        cmd.path.utf8 = has_utf8(text);
    }
    std::string_view params = rest.substr(end);
    if (!params.empty() && params.front() != ' ') return bad_address("Syntax error in address: text after '>'");
    while (!params.empty()) {
        while (!params.empty() && params.front() == ' ') params.remove_prefix(1);
        if (params.empty()) break;
        size_t sp = params.find(' ');
        std::string_view p = params.substr(0, sp);
        params.remove_prefix(sp == std::string_view::npos ? params.size() : sp);
        std::string key, value;
        bool has_value = false;
        if (!split_param(p, key, value, has_value)) return bad_args("Syntax error in parameters");
        auto applied = is_mail ? apply_mail_param(cmd.params, key, value, has_value)
                               : apply_rcpt_param(cmd.rcpt, key, value, has_value);
        if (!applied) return applied.error();
    }
    if (is_mail && cmd.path.utf8 && !cmd.params.smtputf8) return utf8_without_smtputf8();
    return {};
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// Makes `text` safe as one reply line: no CR, LF or other control characters.
std::string sanitize(std::string_view text) {
    std::string r(text);
    for (char& c : r)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    return r;
}

}  // namespace

std::string Path::mailbox() const {
    if (null) return "";
    if (domain.empty()) return local;
    return local + "@" + domain;
}

Result<Path> parse_path(std::string_view text, bool allow_null, const Limits& limits, AddressForm form) {
    if (text.size() > limits.max_path) return make_error(501, "5.1.3", "Path too long");
    if (text.size() < 2 || text.front() != '<' || text.back() != '>')
        return bad_address("Syntax error in address: use <local@domain>");
    std::string_view inner = text.substr(1, text.size() - 2);
    Path path;
    if (inner.empty()) {
        if (!allow_null) return bad_address("Null address not allowed here");
        path.null = true;
        return path;
    }
    if (inner.front() == '@') {
        size_t colon = inner.find(':');
        if (colon == std::string_view::npos || !is_source_route(inner.substr(0, colon)))
            return bad_address("Syntax error in source route");
        inner.remove_prefix(colon + 1);
    }
    auto mailbox = parse_mailbox(inner, form);
    if (!mailbox) return mailbox.error();
    path.local = std::move(mailbox->local);
    path.domain = std::move(mailbox->domain);
    return path;
}

Result<Command> parse_command(std::string_view line, const Limits& limits) {
    if (line.size() + 2 > limits.max_command_length) return syntax("Line too long");
    for (char c : line)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
            return syntax("Syntax error: control character in command");
    size_t sp = line.find(' ');
    std::string_view verb = line.substr(0, sp);
    if (verb.empty() || verb.size() > 16) return syntax("Syntax error: command unrecognized");
    for (char c : verb)
        if (!is_alpha(c)) return syntax("Syntax error: command unrecognized");
    Command cmd;
    cmd.verb = upper(verb);
    cmd.arg = std::string(trim(sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1)));
    const std::string& v = cmd.verb;
    if (v == "MAIL" || v == "RCPT") {
        bool is_mail = v == "MAIL";
        std::string_view prefix = is_mail ? "FROM:" : "TO:";
        if (!starts_with_ci(cmd.arg, prefix))
            return bad_args(is_mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>");
        auto r = parse_path_and_params(cmd, std::string_view(cmd.arg).substr(prefix.size()), is_mail, limits);
        if (!r) return r.error();
    } else if (v == "DATA" || v == "RSET" || v == "QUIT" || v == "STARTTLS") {
        if (!cmd.arg.empty()) return bad_args("Syntax error: " + v + " takes no arguments");
    } else if (v == "HELO" || v == "EHLO" || v == "LHLO") {
        if (cmd.arg.empty()) return bad_args("Syntax: " + v + " hostname");
    } else if (v == "BDAT") {
        auto b = parse_bdat(cmd.arg);
        if (!b) return b.error();
        cmd.bdat = *b;
    }
    return cmd;
}

LineReader::Step LineReader::next(std::string_view input) {
    size_t skip = 0;
    if (discarding_) {
        size_t lf = input.find('\n');
        if (lf == std::string_view::npos) return {Status::need_more, {}, input.size()};
        discarding_ = false;
        skip = lf + 1;
        input.remove_prefix(skip);
    }
    size_t lf = input.find('\n');
    if (lf == std::string_view::npos) {
        // max_ bytes without LF cannot become a line of at most max_ - 2 octets plus CRLF.
        if (input.size() >= max_) {
            discarding_ = true;
            return {Status::too_long, {}, skip + input.size()};
        }
        return {Status::need_more, {}, skip};
    }
    std::string_view line = input.substr(0, lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() + 2 > max_) return {Status::too_long, {}, skip + lf + 1};
    return {Status::line, line, skip + lf + 1};
}

Error bare_newline_error() {
    return make_error(554, "5.6.11", "Bare LF/CR not allowed in message, use CRLF");
}

Error nul_error() {
    return make_error(554, "5.6.0", "NUL characters not allowed in message", "NUL byte in message");
}

Error mail_loop_error(size_t max_received) {
    return make_error(554, "5.4.6", "Too many Received: headers (more than " + std::to_string(max_received) +
                                        "): mail loop?", "mail loop");
}

Error message_too_big_error(uint64_t limit) {
    return make_error(552, "5.3.4", "Message size exceeds fixed limit of " + std::to_string(limit) + " bytes");
}

void DataReader::fail(Error e) {
    if (!error_) error_ = std::move(e);
}

// A bare LF or a CR not followed by LF. RFC 5321 2.3.8 allows neither in DATA; accepting them
// as line ends is what SMTP smuggling exploits, so they never end a line here.
void DataReader::bare(char c) {
    fail(bare_newline_error());
    error_->detail = c == '\n' ? "bare LF in message" : "bare CR in message";
}

namespace {

uint64_t room(uint64_t limit, uint64_t used) { return used >= limit ? 0 : limit - used; }

}  // namespace

Error DataReader::limit_error(Limit which) const {
    switch (which) {
    case Limit::line:
        return make_error(552, "5.3.4", "Message line exceeds limit of " + std::to_string(limits_.max_line_length) + " octets");
    case Limit::header:
        return make_error(552, "5.3.4", "Message header exceeds limit of " + std::to_string(limits_.max_header_size) + " bytes");
    case Limit::size:
        break;
    }
    return message_too_big_error(limits_.max_message_size);
}

// Adds line bytes to the message: outputs the part within every limit and records the breach
// of the first limit the rest crosses, exactly as feeding them one at a time would.
void DataReader::emit(std::string_view bytes, bool wire_only, std::string& out) {
    if (error_) return;
    // A NUL would be stored raw and could end a line early for a C-string reader downstream (a NUL
    // then "." taken for the end of data): the message is refused, never stored with it.
    if (size_t nul = bytes.find('\0'); nul != std::string_view::npos) {
        emit(bytes.substr(0, nul), wire_only, out);  // as feeding the bytes one at a time would
        return fail(nul_error());
    }
    uint64_t k = bytes.size();
    uint64_t line_room = room(limits_.max_line_length, line_length_ + 2);
    uint64_t size_room = wire_only ? k : room(limits_.max_message_size, size_);
    uint64_t header_room = wire_only || !in_header_ ? k : room(limits_.max_header_size, header_size_);
    uint64_t allowed = std::min({k, line_room, size_room, header_room});
    if (!wire_only) out.append(bytes.substr(0, allowed));
    if (!wire_only && in_header_ && line_start_.size() < 9)
        line_start_.append(bytes.substr(0, 9 - line_start_.size()));
    line_length_ += k;
    if (!wire_only) {
        size_ += k;
        if (in_header_) header_size_ += k;
    }
    if (allowed == k) return;
    fail(limit_error(allowed == line_room ? Limit::line : allowed == size_room ? Limit::size : Limit::header));
}

// A CRLF: two octets of the message, one LF in the output.
void DataReader::end_line(std::string& out) {
    if (!error_) {
        size_ += 2;
        if (in_header_) header_size_ += 2;
        if (size_ > limits_.max_message_size) fail(limit_error(Limit::size));
        else if (in_header_ && header_size_ > limits_.max_header_size) fail(limit_error(Limit::header));
        else out.push_back('\n');
    }
    if (in_header_ && line_length_ > 0) note_header_line();
    if (in_header_ && line_length_ == 0) in_header_ = false;  // the empty line after the header section
    line_length_ = 0;
    line_start_.clear();
}

// RFC 5321 6.3: a message that has been through too many hops is in a loop; the count is of the
// header fields named Received (a continuation line starts with white space and matches nothing).
void DataReader::note_header_line() {
    if (limits_.max_received == 0 || line_start_.size() < 9) return;
    for (size_t i = 0; i < 9; ++i)
        if (std::tolower(static_cast<unsigned char>(line_start_[i])) != "received:"[i]) return;
    if (++received_ > limits_.max_received) fail(mail_loop_error(limits_.max_received));
}

// The whole ordinary body lines at the start of `in`, in one go: each ends in CRLF, has no CR, LF
// or NUL before it, does not start with a dot of the dot framing, and keeps within the line and
// size limits. The octet states would do exactly the same with them, at a cost per octet that
// is most of a large message's reading. Returns the octets taken (0: the slow path's line).
size_t DataReader::body_lines(std::string_view in, std::string& out) {
    const char* const start = in.data();
    const char* const end = start + in.size();
    const uint64_t max_content = limits_.max_line_length > 2 ? limits_.max_line_length - 2 : 0;
    const char* p = start;
    while (p < end) {
        auto lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
        if (!lf || lf == p || lf[-1] != '\r') break;
        size_t len = static_cast<size_t>(lf - 1 - p);
        if (len > max_content || size_ + len + 2 > limits_.max_message_size) break;
        if (len > 0 && *p == '.' && framing_ == Framing::dot) break;
        if (std::memchr(p, '\r', len) || std::memchr(p, '\0', len)) break;
        out.append(p, len + 1);
        out.back() = '\n';  // the CR's place takes the LF
        size_ += len + 2;
        p = lf + 1;
    }
    return static_cast<size_t>(p - start);
}

void DataReader::end_chunks() {
    if (state_ == State::cr) bare('\r');
    state_ = State::finished;
}

DataReader::Step DataReader::feed(std::string_view in, std::string& out) {
    const size_t n = in.size();
    size_t i = 0;
    while (i < n) {
        char c = in[i];
        switch (state_) {
        case State::finished:
            return {Status::done, i};
        case State::mid: {
            // The run ends at the first CR or LF: memchr for the line's LF, then for a CR before it.
            const char* at = in.data();
            size_t j = n;
            if (const void* lf = std::memchr(at + i, '\n', n - i)) j = static_cast<size_t>(static_cast<const char*>(lf) - at);
            if (const void* cr = std::memchr(at + i, '\r', j - i)) j = static_cast<size_t>(static_cast<const char*>(cr) - at);
            if (j > i) {  // a run of ordinary bytes in one append
                emit(in.substr(i, j - i), false, out);
                i = j;
                continue;
            }
            if (c == '\r') state_ = State::cr;
            else bare('\n');
            ++i;
            break;
        }
        case State::line_start:
            if (!in_header_ && !error_) {
                if (size_t taken = body_lines(in.substr(i), out)) {
                    i += taken;
                    continue;
                }
            }
            if (c == '.' && framing_ == Framing::dot) {
                emit(in.substr(i, 1), true, out);  // the dot counts on the wire, not in the message
                state_ = State::dot;
            } else if (c == '\r') {
                state_ = State::cr;
            } else if (c == '\n') {
                bare('\n');
                state_ = State::mid;  // a bare LF starts no line: "\n.\r\n" is not the end
            } else {
                state_ = State::mid;  // c starts the line's run of ordinary bytes
                break;
            }
            ++i;
            break;
        case State::dot:
            if (c == '\r') {
                state_ = State::dot_cr;
            } else if (c == '\n') {
                bare('\n');
                state_ = State::mid;
            } else {
                emit(in.substr(i, 1), false, out);  // the leading dot is dropped: dot-unstuffing (4.5.2)
                state_ = State::mid;
            }
            ++i;
            break;
        case State::dot_cr:
            if (c == '\n') {
                state_ = State::finished;
                return {Status::done, i + 1};
            }
            bare('\r');
            state_ = State::mid;  // c is looked at again as an ordinary byte
            break;
        case State::cr:
            if (c == '\n') {
                end_line(out);
                state_ = State::line_start;
                ++i;
            } else {
                bare('\r');
                state_ = State::mid;
            }
            break;
        }
    }
    return {Status::need_more, n};
}

std::string reply(int code, std::string_view enhanced, std::string_view text) {
    std::string prefix = std::to_string(code);
    std::string r;
    while (true) {
        size_t nl = text.find('\n');
        bool last = nl == std::string_view::npos;
        r += prefix + (last ? " " : "-");
        if (!enhanced.empty()) r += sanitize(enhanced) + " ";
        r += sanitize(text.substr(0, nl));
        r += "\r\n";
        if (last) return r;
        text.remove_prefix(nl + 1);
    }
}

std::string reply(const Error& e) { return reply(e.code, e.enhanced, e.text); }

std::string reply_lines(int code, const std::vector<std::string>& lines) {
    std::string prefix = std::to_string(code);
    if (lines.empty()) return prefix + "\r\n";
    std::string r;
    for (size_t i = 0; i < lines.size(); ++i) {
        r += prefix + (i + 1 == lines.size() ? " " : "-");
        r += sanitize(lines[i]);
        r += "\r\n";
    }
    return r;
}

}  // namespace ferry::smtp
