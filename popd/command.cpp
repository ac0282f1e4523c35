// POP3 command lines: a pure line scanner with a length limit and a parser of RFC 1939/2449/5034 commands.
#include "popd/command.hpp"

#include <cctype>
#include <charconv>

namespace ferry::pop3 {

namespace {

struct VerbInfo {
    const char* keyword;
    Verb verb;
    size_t min_args, max_args;  // PASS is special-cased: its one argument is the rest of the line
};

// RFC 1939 section 9 (and RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH).
const VerbInfo kVerbs[] = {
    {"USER", Verb::user, 1, 1}, {"PASS", Verb::pass, 1, 1}, {"STAT", Verb::stat, 0, 0},
    {"LIST", Verb::list, 0, 1}, {"RETR", Verb::retr, 1, 1}, {"DELE", Verb::dele, 1, 1},
    {"NOOP", Verb::noop, 0, 0}, {"RSET", Verb::rset, 0, 0}, {"QUIT", Verb::quit, 0, 0},
    {"TOP", Verb::top, 2, 2},   {"UIDL", Verb::uidl, 0, 1}, {"CAPA", Verb::capa, 0, 0},
    {"STLS", Verb::stls, 0, 0}, {"AUTH", Verb::auth, 0, 2},
};

Error syntax(std::string text) { return make_error(0, "", std::move(text)); }

std::vector<std::string_view> split_words(std::string_view s) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') ++i;
        size_t start = i;
        while (i < s.size() && s[i] != ' ') ++i;
        if (i > start) out.push_back(s.substr(start, i - start));
    }
    return out;
}

// Message numbers for LIST/UIDL/RETR/DELE/TOP, and TOP's line count (which may be 0).
Result<void> parse_numbers(Command& cmd) {
    bool wants_number = cmd.verb == Verb::list || cmd.verb == Verb::uidl || cmd.verb == Verb::retr ||
                        cmd.verb == Verb::dele || cmd.verb == Verb::top;
    if (!wants_number || cmd.args.empty()) return {};
    auto n = parse_number(cmd.args[0]);
    if (!n || *n == 0) return syntax("invalid message number");
    cmd.number = n;
    if (cmd.verb == Verb::top) {
        auto lines = parse_number(cmd.args[1]);
        if (!lines) return syntax("invalid line count");
        cmd.lines = lines;
    }
    return {};
}

}  // namespace

LineScan scan_line(std::string_view buf, size_t max_line, bool skipping) {
    size_t nl = buf.find('\n');
    if (skipping) {
        if (nl == std::string_view::npos) return {LineScan::need_more, buf.size(), {}};
        return {LineScan::skipped, nl + 1, {}};
    }
    if (nl == std::string_view::npos) {
        if (buf.size() >= max_line) return {LineScan::too_long, buf.size(), {}};
        return {LineScan::need_more, 0, {}};
    }
    // The limit counts the line terminator, as RFC 2449 does; a bare LF is accepted as one.
    size_t end = nl;
    if (end > 0 && buf[end - 1] == '\r') --end;
    size_t counted = end + 2;
    if (counted > max_line) return {LineScan::too_long, nl + 1, {}, true};
    return {LineScan::line, nl + 1, buf.substr(0, end)};
}

std::optional<uint64_t> parse_number(std::string_view s) {
    if (s.empty() || s.size() > 19) return std::nullopt;
    uint64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return n;
}

Result<Command> parse_command(std::string_view line, const Limits& limits) {
    for (char c : line)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return syntax("malformed command");
    size_t sp = line.find(' ');
    std::string_view word = line.substr(0, sp);
    std::string_view rest = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    if (word.empty() || word.size() > 4) return syntax("unknown command");
    Command cmd;
    for (char c : word) cmd.keyword += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const VerbInfo* info = nullptr;
    for (const auto& v : kVerbs)
        if (cmd.keyword == v.keyword) info = &v;
    if (!info) return syntax("unknown command");
    cmd.verb = info->verb;
    if (cmd.verb == Verb::pass) {
        // RFC 1939 section 7: the server may treat spaces in the argument as part of the password.
        if (rest.empty()) return syntax("PASS needs a password");
        cmd.args.emplace_back(rest);
        return cmd;
    }
    auto words = split_words(rest);
    if (words.size() < info->min_args || words.size() > info->max_args)
        return syntax("wrong number of arguments to " + cmd.keyword);
    for (auto w : words) {
        if (w.size() > limits.max_argument) return syntax("argument too long");
        cmd.args.emplace_back(w);
    }
    if (auto r = parse_numbers(cmd); !r) return r.error();
    return cmd;
}

}  // namespace ferry::pop3
