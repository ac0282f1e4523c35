// IMAP command framing (RFC 9051 section 2.2 and 4.3, RFC 7888 literals) as an incremental reader.
#include "imapd/reader.hpp"

#include <algorithm>

namespace ferry::imap {

namespace {

bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// RFC 3629 well-formed UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF).
bool valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        unsigned char c = s[i];
        size_t n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 4;
        if (n == 4 || i + n >= s.size()) return false;
        uint32_t cp = n == 0 ? c : n == 1 ? (c & 0x1f) : n == 2 ? (c & 0x0f) : (c & 0x07);
        for (size_t k = 1; k <= n; k++) {
            unsigned char d = s[i + k];
            if ((d & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

// Parses "{n}", "{n+}" or "~{n}" ending the segment at `i`; returns false when it is malformed.
bool parse_literal_header(std::string_view s, size_t i, uint64_t& n, bool& nonsync, bool& lit8) {
    lit8 = s[i] == '~';
    if (lit8) i++;
    if (i >= s.size() || s[i] != '{') return false;
    i++;
    size_t start = i;
    n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (i - start >= 19) return false;
        n = n * 10 + uint64_t(s[i] - '0');
        i++;
    }
    if (i == start) return false;
    nonsync = i < s.size() && s[i] == '+';
    if (nonsync) i++;
    return i + 1 == s.size() && s[i] == '}';
}

// The FETCH attributes whose "[" starts a section.
bool opens_section(std::string_view name) {
    std::string u = upper(name);
    return u == "BODY" || u == "BODY.PEEK" || u == "BINARY" || u == "BINARY.PEEK" || u == "BINARY.SIZE";
}

}  // namespace

bool Arg::is_atom(std::string_view u) const {
    return type == Type::atom && value.size() == u.size() && upper(value) == u;
}

std::string upper(std::string_view s) {
    std::string r(s);
    for (char& c : r)
        if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
    return r;
}

bool valid_tag(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char c : s)
        if (is_ctl(c) || c >= 0x80 || c == ' ' || c == '(' || c == ')' || c == '{' || c == '%' || c == '*' ||
            c == '"' || c == '\\' || c == '+')
            return false;
    return true;
}

std::vector<Arg>& CommandReader::current() { return *stack_.back(); }

void CommandReader::reset() {
    started_ = false;
    cmd_ = RawCommand{};
    stack_.clear();
    nargs_ = 0;
    total_ = 0;
    literal_ = Arg{};
    literal_left_ = 0;
}

Step CommandReader::fail(ReadError::Kind kind, ReadError::Action action, std::string text) {
    Step st;
    st.kind = Step::Kind::error;
    st.error = ReadError{kind, action, cmd_.tag, std::move(text)};
    reset();
    if (action == ReadError::Action::close) state_ = State::closed;
    return st;
}

// After an error found in `line`: a non-synchronising literal it announced still arrives and is
// skipped; a synchronising one never comes (the client saw the tagged answer instead of "+").
static bool announced_nonsync(std::string_view line, uint64_t& n) {
    size_t open = line.rfind('{');
    if (open == std::string_view::npos) return false;
    size_t from = open > 0 && line[open - 1] == '~' ? open - 1 : open;
    bool nonsync = false, lit8 = false;
    return parse_literal_header(line, from, n, nonsync, lit8) && nonsync;
}

Step CommandReader::next(std::string_view& in) {
    for (;;) {
        if (state_ == State::closed) {
            in.remove_prefix(in.size());
            return Step{Step::Kind::error, {}, ReadError{ReadError::Kind::bad, ReadError::Action::close, {}, "Connection closed"}, {}};
        }
        if (state_ == State::literal || state_ == State::skip_literal) {
            uint64_t& left = state_ == State::literal ? literal_left_ : skip_left_;
            size_t take = size_t(std::min<uint64_t>(left, in.size()));
            if (state_ == State::literal) literal_.value.append(in.substr(0, take));
            in.remove_prefix(take);
            left -= take;
            if (left > 0) return Step{};
            if (state_ == State::skip_literal) {
                state_ = State::skip_line;
                continue;
            }
            Step st = on_literal_done();
            if (st.kind != Step::Kind::need_more) return st;
            continue;
        }
        bool got = false;
        std::string line;
        Step st = take_line(in, line, got);
        if (!got) return st;
        if (state_ == State::skip_line) {
            state_ = State::line;
            Step st = refused(Step{Step::Kind::error, {}, {}, {}}, line);
            if (state_ == State::closed) return st;
            continue;
        }
        if (want_line_ && !started_) {
            want_line_ = false;
            Step out;
            out.kind = Step::Kind::line;
            out.line = std::move(line);
            return out;
        }
        st = on_line(std::move(line));
        if (st.kind != Step::Kind::need_more) return st;
    }
}

// Moves input into buf_ until an LF ends the line; the line (without CR LF) goes to `line`.
Step CommandReader::take_line(std::string_view& in, std::string& line, bool& got) {
    size_t lf = in.find('\n');
    size_t take = lf == std::string_view::npos ? in.size() : lf;
    // The line with its LF may hold max_line bytes (CR included).
    if (buf_.size() + take + 1 > limits_.max_line) {
        // Name the tag when the long line began with one.
        if (!started_) {
            std::string head = buf_ + std::string(in.substr(0, std::min<size_t>(take, 256)));
            size_t sp = head.find(' ');
            if (sp != std::string::npos && valid_tag(std::string_view(head).substr(0, sp))) cmd_.tag = head.substr(0, sp);
        }
        buf_.clear();
        in.remove_prefix(in.size());
        return fail(ReadError::Kind::bad, ReadError::Action::close, "Line too long");
    }
    buf_.append(in.substr(0, take));
    if (lf == std::string_view::npos) {
        in.remove_prefix(in.size());
        return Step{};
    }
    in.remove_prefix(lf + 1);
    if (!buf_.empty() && buf_.back() == '\r') buf_.pop_back();
    line.swap(buf_);
    buf_.clear();
    got = true;
    return Step{};
}

// An error was found in `line`: a non-synchronising literal it announced still arrives and is
// skipped unread; one too large even to skip ends the connection.
Step CommandReader::refused(Step st, std::string_view line) {
    uint64_t n = 0;
    if (st.kind != Step::Kind::error || state_ != State::line || !announced_nonsync(line, n)) return st;
    if (n > limits_.max_command) {
        st.error = ReadError{ReadError::Kind::too_big, ReadError::Action::close, st.error.tag, "Literal too big"};
        state_ = State::closed;
        return st;
    }
    skip_left_ = n;
    state_ = State::skip_literal;
    return st;
}

// The tag and the command name opening a command; `s` is left at the arguments.
Step CommandReader::head(std::string_view& s) {
    size_t sp = s.find(' ');
    std::string_view tag = s.substr(0, sp);
    if (!valid_tag(tag)) return fail(ReadError::Kind::bad, ReadError::Action::resync, "Invalid tag");
    cmd_.tag = std::string(tag);
    started_ = true;
    total_ = 0;
    stack_.assign(1, &cmd_.args);
    s = sp == std::string_view::npos ? std::string_view{} : s.substr(sp + 1);
    size_t end = s.find(' ');
    std::string_view name = s.substr(0, end);
    bool name_ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    });
    if (!name_ok) return fail(ReadError::Kind::bad, ReadError::Action::resync, name.empty() ? "Missing command" : "Invalid command name");
    cmd_.name = upper(name);
    s = end == std::string_view::npos ? std::string_view{} : s.substr(end);
    sep_ok_ = true;
    return Step{};
}

Step CommandReader::on_line(std::string line) {
    std::string_view s(line);
    if (!started_) {
        if (s.empty()) return Step{};  // a stray CRLF between commands is not worth a BAD
        if (Step st = head(s); st.kind != Step::Kind::need_more) return refused(std::move(st), line);
    }
    total_ += line.size() + 2;
    if (total_ > limits_.max_command) return refused(fail(ReadError::Kind::too_big, ReadError::Action::resync, "Command too big"), line);
    return refused(tokenize(s), line);
}

Step CommandReader::on_literal_done() {
    if (!literal_.literal8 && literal_.value.find('\0') != std::string::npos) {
        Step st = fail(ReadError::Kind::bad, ReadError::Action::resync, "NUL in literal (use literal8)");
        state_ = State::skip_line;
        return st;
    }
    current().push_back(std::move(literal_));
    literal_ = Arg{};
    state_ = State::line;
    sep_ok_ = false;
    return Step{};
}

Step CommandReader::tokenize(std::string_view s) {
    using K = ReadError::Kind;
    using A = ReadError::Action;
    size_t i = 0;
    auto count = [&]() { return ++nargs_ <= limits_.max_args; };
    while (i < s.size()) {
        unsigned char c = s[i];
        if (c == ' ') {
            sep_ok_ = true;
            i++;
            continue;
        }
        if (c == ')') {
            if (stack_.size() < 2) return fail(K::bad, A::resync, "Unexpected )");
            stack_.pop_back();
            sep_ok_ = false;
            i++;
            continue;
        }
        if (!sep_ok_) return fail(K::bad, A::resync, "Missing space between arguments");
        if (!count()) return fail(K::bad, A::resync, "Too many arguments");
        if (c == '(') {
            if (stack_.size() > limits_.max_depth) return fail(K::bad, A::resync, "Too deep nesting of parentheses");
            current().push_back(Arg{Arg::Type::list, {}, false, {}});
            stack_.push_back(&current().back().list);
            i++;
            sep_ok_ = true;
            continue;
        }
        sep_ok_ = false;
        if (c == '"') {
            Arg a{Arg::Type::quoted, {}, false, {}};
            i++;
            bool closed = false;
            bool eight = false;
            while (i < s.size()) {
                unsigned char q = s[i++];
                if (q == '"') {
                    closed = true;
                    break;
                }
                if (q == '\\') {
                    if (i >= s.size() || (s[i] != '"' && s[i] != '\\')) return fail(K::bad, A::resync, "Invalid escape in quoted string");
                    q = s[i++];
                } else if (q == 0 || q == '\r') {
                    return fail(K::bad, A::resync, "Control character in quoted string");
                }
                eight |= q >= 0x80;
                a.value.push_back(char(q));
            }
            if (!closed) return fail(K::bad, A::resync, "Missing \" at the end of a quoted string");
            if (eight && !valid_utf8(a.value)) return fail(K::bad, A::resync, "Quoted string is not UTF-8");
            current().push_back(std::move(a));
            continue;
        }
        if (c == '{' || (c == '~' && i + 1 < s.size() && s[i + 1] == '{')) {
            uint64_t n = 0;
            bool nonsync = false, lit8 = false;
            if (!parse_literal_header(s, i, n, nonsync, lit8)) return fail(K::bad, A::resync, "Invalid literal");
            if (nonsync && mode_ == LiteralMode::sync_only) return fail(K::bad, A::resync, "Non-synchronizing literals are not supported");
            bool over = n > limits_.max_literal || total_ + n > limits_.max_command;
            if (nonsync && mode_ == LiteralMode::literal_minus && n > limits_.max_literal_minus) {
                // RFC 7888 section 4: refuse it, and the client's data follows anyway.
                Step st = fail(K::too_big, n > limits_.max_command ? A::close : A::resync, "Non-synchronizing literal too big (LITERAL-)");
                if (n <= limits_.max_command) skip_left_ = n, state_ = State::skip_literal;
                return st;
            }
            if (over) {
                Step st = fail(K::too_big, nonsync && n > limits_.max_command ? A::close : A::resync, "Literal too big");
                if (nonsync && n <= limits_.max_command) skip_left_ = n, state_ = State::skip_literal;
                return st;
            }
            total_ += n;
            literal_ = Arg{Arg::Type::literal, {}, lit8, {}};
            literal_left_ = n;
            state_ = State::literal;
            if (!nonsync) return Step{Step::Kind::continuation, {}, {}, {}};
            return Step{};
        }
        // An atom; after BODY, BINARY and their variants a "[" opens a section (FETCH
        // BODY[HEADER.FIELDS (A B)]<0.5>) that may hold spaces, parentheses and quoted strings up
        // to its "]". Elsewhere "[" is an ordinary atom character (a mailbox named "[Gmail]/x").
        Arg a{Arg::Type::atom, {}, false, {}};
        int brackets = 0;
        bool in_quote = false;
        while (i < s.size()) {
            unsigned char t = s[i];
            if (in_quote) {
                if (t == '\\' && i + 1 < s.size()) a.value.push_back(char(t)), t = s[++i];
                else if (t == '"') in_quote = false;
            } else if (brackets > 0) {
                if (t == '[') brackets++;
                else if (t == ']') brackets--;
                else if (t == '"') in_quote = true;
            } else {
                if (t == ' ' || t == '(' || t == ')') break;
                if (t == '[' && opens_section(a.value)) brackets++;
                else if (t == '"' || t == '{') return fail(K::bad, A::resync, "Invalid character in atom");
            }
            if (is_ctl(t)) return fail(K::bad, A::resync, "Control character in atom");
            if (t >= 0x80) return fail(K::bad, A::resync, "8-bit data in atom");
            a.value.push_back(char(t));
            i++;
        }
        if (brackets > 0 || in_quote) return fail(K::bad, A::resync, "Missing ] in atom");
        current().push_back(std::move(a));
    }
    if (state_ == State::literal) return Step{};
    if (stack_.size() > 1) return fail(K::bad, A::resync, "Missing )");
    Step st;
    st.kind = Step::Kind::command;
    st.command = std::move(cmd_);
    reset();
    return st;
}

}  // namespace ferry::imap
