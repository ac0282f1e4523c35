// The spam rule file (ferry-spam-rules(5)): a pure, line-based parser with limits, and the built-in rules.
#include "common/verify/spam_rules.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace ferry::verify::spam {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// The next white-space separated word of `s`, taken off its front.
std::string_view word(std::string_view& s) {
    s = trim(s);
    size_t end = 0;
    while (end < s.size() && s[end] != ' ' && s[end] != '\t') ++end;
    std::string_view w = s.substr(0, end);
    s.remove_prefix(end);
    return w;
}

std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

bool valid_name(std::string_view n, size_t max) {
    if (n.empty() || n.size() > max) return false;
    for (char c : n)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
    return true;
}

// RFC 5322 2.2: a field name is printable US-ASCII except ':'.
bool valid_field(std::string_view f) {
    if (f.empty() || f.size() > 76) return false;
    for (char c : f)
        if (c <= 32 || c >= 127 || c == ':') return false;
    return true;
}

Rule* find(RuleSet& set, std::string_view name) {
    for (auto& r : set.rules)
        if (r.name == name) return &r;
    return nullptr;
}

Error at(size_t line, const std::string& why) { return make_error(0, "", "line " + std::to_string(line) + ": " + why); }

// libstdc++'s regex compiler overflows a signed integer on a count of 19 digits, in a repetition or
// a back-reference, and a large repetition count blows up its automaton: a '{' or a '\\' followed
// by a number of more than four digits is refused.
bool huge_repetition(std::string_view re) {
    for (size_t i = 0; i < re.size(); ++i) {
        if (re[i] == '\\') {
            size_t j = i + 1;
            while (j < re.size() && re[j] >= '0' && re[j] <= '9') ++j;
            if (j - (i + 1) > 4) return true;
            ++i;  // the escaped character is no '{' nor '\\'
            continue;
        }
        if (re[i] != '{') continue;
        size_t j = i + 1;
        for (int part = 0; part < 2; ++part) {
            size_t start = j;
            while (j < re.size() && re[j] >= '0' && re[j] <= '9') ++j;
            if (j - start > 4) return true;
            if (part == 1 || j >= re.size() || re[j] != ',') break;
            ++j;
        }
    }
    return false;
}

// MATCH: "/re/" or "/re/i" compiles a regex; anything else is a substring.
Result<void> parse_match(std::string_view m, Rule& r, size_t line, const RuleLimits& limits) {
    m = trim(m);
    if (m.empty()) return at(line, "rule " + r.name + " has nothing to match");
    if (m.size() >= 2 && m.front() == '/' && (m.back() == '/' || (m.size() >= 3 && m.ends_with("/i")))) {
        r.icase = m.back() == 'i';
        m = m.substr(1, m.size() - (r.icase ? 3 : 2));
        if (m.empty()) return at(line, "rule " + r.name + " has an empty regex");
        if (m.size() > limits.max_pattern) return at(line, "rule " + r.name + ": regex longer than " + std::to_string(limits.max_pattern));
        if (huge_repetition(m)) return at(line, "rule " + r.name + ": regex count over 9999 (a repetition or back-reference)");
        r.is_regex = true;
        r.pattern = std::string(m);
        auto flags = std::regex::ECMAScript | std::regex::optimize;
        if (r.icase) flags |= std::regex::icase;
        try {
            r.re = std::make_shared<const std::regex>(r.pattern, flags);
        } catch (const std::exception& e) {
            return at(line, "rule " + r.name + ": bad regex: " + e.what());
        }
        return {};
    }
    if (m.size() > limits.max_pattern) return at(line, "rule " + r.name + ": pattern longer than " + std::to_string(limits.max_pattern));
    r.pattern = std::string(m);
    r.needle = lower(m);
    return {};
}

Result<void> parse_line(std::string_view l, size_t line, RuleSet& set, size_t& added, const RuleLimits& limits) {
    std::string_view kind = word(l);
    if (kind == "score") {
        std::string_view name = word(l), s = word(l);
        double score = 0;
        if (!parse_score(s, score) || std::fabs(score) > limits.max_score) return at(line, "bad score \"" + std::string(s) + "\"");
        if (!trim(l).empty()) return at(line, "text after the score");
        if (name == "SPF_FAIL") set.spf_fail = score;
        else if (name == "SPF_SOFTFAIL") set.spf_softfail = score;
        else if (Rule* r = find(set, name)) r->score = score;
        else return at(line, "no rule named \"" + std::string(name) + "\" before this line");
        return {};
    }
    if (kind != "header" && kind != "body") return at(line, "unknown line \"" + std::string(kind) + "\" (header, body, score)");
    Rule r;
    r.target = kind == "header" ? RuleTarget::header : RuleTarget::body;
    std::string_view name = word(l);
    if (!valid_name(name, limits.max_name)) return at(line, "bad rule name \"" + std::string(name) + "\" (letters, digits, _)");
    r.name = std::string(name);
    if (find(set, name) || name == "SPF_FAIL" || name == "SPF_SOFTFAIL") return at(line, "rule " + r.name + " is defined twice");
    if (r.target == RuleTarget::header) {
        std::string_view f = word(l);
        if (!valid_field(f)) return at(line, "bad header field name \"" + std::string(f) + "\"");
        r.field = lower(f);
    }
    std::string_view s = word(l);
    if (!parse_score(s, r.score) || std::fabs(r.score) > limits.max_score) return at(line, "bad score \"" + std::string(s) + "\"");
    if (auto m = parse_match(l, r, line, limits); !m) return m;
    if (set.rules.size() >= limits.max_rules) return at(line, "more than " + std::to_string(limits.max_rules) + " rules");
    set.rules.push_back(std::move(r));
    ++added;
    return {};
}

}  // namespace

bool parse_score(std::string_view s, double& out) {
    if (s.empty() || s.size() > 16) return false;
    size_t i = s[0] == '-' || s[0] == '+' ? 1 : 0;
    bool digit = false, dot = false;
    for (size_t k = i; k < s.size(); ++k) {
        if (std::isdigit(static_cast<unsigned char>(s[k]))) digit = true;
        else if (s[k] == '.' && !dot) dot = true;
        else return false;
    }
    if (!digit) return false;
    out = std::strtod(std::string(s).c_str(), nullptr);
    return std::isfinite(out);
}

RuleSet builtin_rules() {
    RuleSet set;
    Rule gtube;
    gtube.name = "GTUBE";
    gtube.target = RuleTarget::body;
    gtube.pattern = std::string(kGtube);
    gtube.needle = lower(kGtube);
    gtube.score = 1000;
    set.rules.push_back(std::move(gtube));
    return set;
}

Result<RuleSet> parse_rules(std::string_view text, RuleSet base, const RuleLimits& limits) {
    if (text.size() > limits.max_file) return make_error(0, "", "larger than " + std::to_string(limits.max_file) + " octets");
    size_t line = 0, added = 0;
    while (!text.empty()) {
        ++line;
        size_t nl = text.find('\n');
        std::string_view l = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (l.size() > limits.max_line) return at(line, "longer than " + std::to_string(limits.max_line) + " octets");
        l = trim(l);
        if (l.empty() || l[0] == '#') continue;
        if (auto r = parse_line(l, line, base, added, limits); !r) return r.error();
    }
    return base;
}

}  // namespace ferry::verify::spam
