// ManageSieve commands (RFC 5804 section 4): a pure scanner with limits, and the verb table.
#include "mda/managesieve/command.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace ferry::managesieve {

namespace {

constexpr uint64_t kMaxNumber = 4294967295ULL;  // RFC 5804 section 4: number

bool atom_char(unsigned char c) {
    return c > 0x20 && c < 0x7f && c != '"' && c != '{' && c != '}' && c != '(' && c != ')' && c != '\\' &&
           c != '%' && c != '*' && c != ']';
}

Scan fail(size_t consumed, std::string text) {
    Scan s;
    s.status = Scan::Status::error;
    s.consumed = consumed;
    s.error = std::move(text);
    return s;
}

// Reads one command's lines and literals out of `in`; `response` reads a lone string instead.
class Scanner {
public:
    Scanner(std::string_view in, const Limits& limits, bool response) : in_(in), limits_(limits), response_(response) {}

    Scan run() {
        size_t seg = 0;  // where the current line (after the last literal) starts
        bool first = true;
        while (true) {
            size_t lf = in_.find('\n', seg);
            size_t have = (lf == std::string_view::npos ? in_.size() : lf + 1) - seg;  // octets of the line so far
            if (lf == std::string_view::npos) {
                if (have < limits_.max_line) return Scan{};
                Scan s = fail(in_.size(), "line too long");
                s.skip_line = true;
                return s;
            }
            if (have > limits_.max_line) return fail(lf + 1, "line too long");
            size_t end = lf > seg && in_[lf - 1] == '\r' ? lf - 1 : lf;
            consumed_end_ = lf + 1;
            auto lit = parse_line(in_.substr(seg, end - seg), first);
            if (!error_.empty()) return fail(lf + 1, error_);
            first = false;
            if (!lit) break;
            // A literal's octets follow the line; the command goes on after them.
            size_t data = lf + 1;
            if (*lit > limits_.max_literal) {
                Scan s = fail(data, "literal of " + std::to_string(*lit) + " octets is longer than the limit of " +
                                        std::to_string(limits_.max_literal));
                s.code = "QUOTA/MAXSIZE";
                s.discard = *lit;
                s.skip_line = true;
                return s;
            }
            if (in_.size() - data < *lit) return Scan{};
            push_string(std::string(in_.substr(data, static_cast<size_t>(*lit))));
            seg = data + static_cast<size_t>(*lit);
            after_literal_ = true;
        }
        if (response_ && command_.args.size() != 1) return fail(consumed_end_, "expected one string");
        Scan s;
        s.status = Scan::Status::command;
        s.consumed = consumed_end_;
        s.command = std::move(command_);
        return s;
    }

private:
    // Parses one line; returns the size of the literal it ends in, if it does. Sets error_ on a syntax error.
    std::optional<uint64_t> parse_line(std::string_view line, bool first) {
        size_t p = 0;
        if (first && !response_) {
            while (p < line.size() && atom_char(static_cast<unsigned char>(line[p]))) ++p;
            if (p == 0) return set_error(line.empty() ? "empty command line" : "expected a command name");
            command_.name.assign(line.substr(0, p));
            for (auto& c : command_.name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            if (command_.name.size() > 32) return set_error("command name too long");
        }
        bool need_space = (first && !response_) || after_literal_;
        after_literal_ = false;
        while (p < line.size()) {
            if (need_space) {
                if (line[p] != ' ') return set_error("expected a space between arguments");
                if (++p == line.size()) return set_error("a space at the end of the line");
            }
            need_space = true;
            char c = line[p];
            if (c == '"') {
                auto s = quoted(line, p);
                if (!s) return std::nullopt;
                push_string(std::move(*s));
            } else if (c == '{') {
                size_t close = line.find('}', p);
                if (close == std::string_view::npos || close + 1 != line.size())
                    return set_error("a literal must end its line: {n} or {n+}");
                std::string_view spec = line.substr(p + 1, close - p - 1);
                if (!spec.empty() && spec.back() == '+') spec.remove_suffix(1);
                auto n = number(spec);
                if (!n) return set_error("bad literal length");
                if (command_.args.size() >= limits_.max_args) return set_error("too many arguments");
                return n;
            } else if (std::isdigit(static_cast<unsigned char>(c))) {
                size_t q = p;
                while (q < line.size() && std::isdigit(static_cast<unsigned char>(line[q]))) ++q;
                auto n = number(line.substr(p, q - p));
                if (!n) return set_error("number out of range");
                Arg a;
                a.kind = Arg::Kind::number;
                a.text.assign(line.substr(p, q - p));
                a.number = *n;
                push(std::move(a));
                p = q;
            } else if (atom_char(static_cast<unsigned char>(c))) {
                size_t q = p;
                while (q < line.size() && atom_char(static_cast<unsigned char>(line[q]))) ++q;
                if (q - p > limits_.max_quoted) return set_error("atom too long");
                push(Arg{Arg::Kind::atom, std::string(line.substr(p, q - p)), 0});
                p = q;
            } else {
                return set_error("unexpected character in the command");
            }
            if (!error_.empty()) return std::nullopt;
        }
        return std::nullopt;
    }

    std::optional<std::string> quoted(std::string_view line, size_t& p) {
        std::string out;
        for (size_t q = p + 1; q < line.size(); ++q) {
            char c = line[q];
            if (c == '"') {
                p = q + 1;
                return out;
            }
            if (c == '\\') {
                if (++q == line.size() || (line[q] != '"' && line[q] != '\\')) {
                    set_error("bad escape in a quoted string: only \\\" and \\\\");
                    return std::nullopt;
                }
                c = line[q];
            } else if (c == '\0' || c == '\r') {
                set_error("control character in a quoted string");
                return std::nullopt;
            }
            if (out.size() >= limits_.max_quoted) {
                set_error("quoted string longer than " + std::to_string(limits_.max_quoted) + " octets; use a literal");
                return std::nullopt;
            }
            out += c;
        }
        set_error("unterminated quoted string");
        return std::nullopt;
    }

    static std::optional<uint64_t> number(std::string_view s) {
        if (s.empty() || s.size() > 10) return std::nullopt;
        uint64_t n = 0;
        for (char c : s) {
            if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
            n = n * 10 + static_cast<uint64_t>(c - '0');
        }
        if (n > kMaxNumber) return std::nullopt;
        return n;
    }

    void push_string(std::string s) { push(Arg{Arg::Kind::string, std::move(s), 0}); }
    void push(Arg a) {
        if (command_.args.size() >= limits_.max_args) {
            set_error("too many arguments");
            return;
        }
        command_.args.push_back(std::move(a));
    }
    std::optional<uint64_t> set_error(std::string text) {
        if (error_.empty()) error_ = std::move(text);
        return std::nullopt;
    }

    std::string_view in_;
    const Limits& limits_;
    bool response_;
    bool after_literal_ = false;
    size_t consumed_end_ = 0;
    Command command_;
    std::string error_;
};

struct VerbDef {
    const char* name;
    Verb verb;
    size_t min_strings, max_strings;
    bool number;  // a number follows the strings
};

constexpr std::array<VerbDef, 14> kVerbs = {{
    {"AUTHENTICATE", Verb::authenticate, 1, 2, false},
    {"STARTTLS", Verb::starttls, 0, 0, false},
    {"LOGOUT", Verb::logout, 0, 0, false},
    {"CAPABILITY", Verb::capability, 0, 0, false},
    {"HAVESPACE", Verb::havespace, 1, 1, true},
    {"PUTSCRIPT", Verb::putscript, 2, 2, false},
    {"LISTSCRIPTS", Verb::listscripts, 0, 0, false},
    {"SETACTIVE", Verb::setactive, 1, 1, false},
    {"GETSCRIPT", Verb::getscript, 1, 1, false},
    {"DELETESCRIPT", Verb::deletescript, 1, 1, false},
    {"RENAMESCRIPT", Verb::renamescript, 2, 2, false},
    {"CHECKSCRIPT", Verb::checkscript, 1, 1, false},
    {"NOOP", Verb::noop, 0, 1, false},
    {"UNAUTHENTICATE", Verb::unauthenticate, 0, 0, false},
}};

}  // namespace

Scan scan_command(std::string_view input, const Limits& limits) { return Scanner(input, limits, false).run(); }

Scan scan_response(std::string_view input, const Limits& limits) { return Scanner(input, limits, true).run(); }

Result<Request> interpret(const Command& command) {
    auto def = std::find_if(kVerbs.begin(), kVerbs.end(), [&](const VerbDef& d) { return command.name == d.name; });
    if (def == kVerbs.end()) return make_error(0, "", "unknown command");
    Request r;
    r.verb = def->verb;
    r.name = def->name;
    size_t i = 0;
    for (; i < command.args.size() && command.args[i].kind == Arg::Kind::string; ++i) r.strings.push_back(command.args[i].text);
    if (def->number && i < command.args.size() && command.args[i].kind == Arg::Kind::number)
        r.number = command.args[i++].number;
    bool ok = i == command.args.size() && r.strings.size() >= def->min_strings &&
              r.strings.size() <= def->max_strings && (!def->number || r.number);
    if (!ok) return make_error(0, "", std::string("wrong arguments for ") + def->name);
    return r;
}

}  // namespace ferry::managesieve
