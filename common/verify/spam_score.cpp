// The spam score of one message: rules over its header and decoded text, plus what other checks found (SPF, DNS lists).
#include "common/verify/spam_score.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "common/mail/mime.hpp"
#include "common/mail/mime_decode.hpp"

namespace ferry::verify::spam {

namespace {

std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

// A regex that gives up (libstdc++ throws error_complexity or error_stack) counts as no match.
bool regex_hit(const Rule& r, std::string_view text, Report& report) {
    try {
        return std::regex_search(text.begin(), text.end(), *r.re);
    } catch (...) {
        ++report.rule_errors;
        return false;
    }
}

bool text_hit(const Rule& r, std::string_view text, std::string_view lowered, const ScoreLimits& limits, Report& report) {
    if (!r.is_regex) return lowered.find(r.needle) != std::string_view::npos;
    // Lines, each cut to max_line: libstdc++'s matcher recurses per character, so its depth stays bounded.
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view l = text.substr(0, std::min(nl, text.size()));
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        for (size_t at = 0; at < l.size() || at == 0; at += limits.max_line) {
            if (regex_hit(r, l.substr(at, limits.max_line), report)) return true;
            if (l.size() <= limits.max_line) break;
        }
    }
    return false;
}

// The top-level header's fields, name lower-cased and value unfolded and decoded.
std::vector<std::pair<std::string, std::string>> header_fields(std::string_view m) {
    std::vector<std::pair<std::string, std::string>> out;
    std::string field;
    auto flush = [&] {
        size_t colon = field.find(':');
        if (colon != std::string::npos && colon > 0)
            out.emplace_back(lower(std::string_view(field).substr(0, colon)),
                             mail::decode_header_value(mail::unfold_value(std::string_view(field).substr(colon + 1))));
        field.clear();
    };
    while (!m.empty()) {
        size_t nl = m.find('\n');
        std::string_view l = m.substr(0, std::min(nl, m.size()));
        m.remove_prefix(nl == std::string_view::npos ? m.size() : nl + 1);
        if (l == "" || l == "\r") break;
        if (l[0] != ' ' && l[0] != '\t') flush();
        field.append(l);
        field += '\n';
    }
    flush();
    return out;
}

// The decoded text of every text/* leaf part, one after another (a part's text then a newline).
void collect_text(const mail::MimePart& p, std::string_view m, std::string& out) {
    for (const auto& c : p.children) collect_text(c, m, out);
    if (!p.children.empty() || p.is_multipart() || p.type != "text") return;
    if (p.body.offset >= m.size()) return;
    std::string_view raw = m.substr(p.body.offset, std::min<uint64_t>(p.body.size, m.size() - p.body.offset));
    const mail::MimeParam* cs = p.param("charset");
    mail::PartTextDecoder d(p.transfer_encoding(), cs ? cs->decoded : std::string("us-ascii"));
    d.feed(raw, out);
    d.finish(out);
    out += '\n';
}

void add(Report& r, const std::string& test, double weight) {
    r.score += weight;
    r.tests.push_back(test);
}

}  // namespace

Report score(const RuleSet& rules, std::string_view message, const Facts& facts, const ScoreLimits& limits) {
    Report report;
    message = message.substr(0, std::min(message.size(), limits.max_bytes));
    auto fields = header_fields(message);
    std::string text;
    collect_text(mail::parse_mime(message), message, text);
    std::string lowered = lower(text);
    for (const auto& r : rules.rules) {
        bool hit = false;
        if (r.target == RuleTarget::body) {
            hit = text_hit(r, text, lowered, limits, report);
        } else {
            for (const auto& [name, value] : fields) {
                if (name != r.field) continue;
                if ((hit = text_hit(r, value, lower(value), limits, report))) break;
            }
        }
        if (hit) add(report, r.name, r.score);
    }
    add_facts(rules, facts, report);
    return report;
}

void add_facts(const RuleSet& rules, const Facts& facts, Report& r) {
    if (facts.spf == "fail") add(r, "SPF_FAIL", rules.spf_fail);
    if (facts.spf == "softfail") add(r, "SPF_SOFTFAIL", rules.spf_softfail);
    for (const auto& l : facts.lists) add(r, l.test, l.weight);
}

std::string format_score(double s) {
    char buf[64];
    double r = std::round(s * 10) / 10;
    if (r == 0) r = 0;  // no "-0.0"
    std::snprintf(buf, sizeof buf, "%.1f", r);
    return buf;
}

std::string status_value(const Report& r, double required) {
    std::string tests;
    for (const auto& t : r.tests) tests += (tests.empty() ? "" : ",") + t;
    return std::string(r.score >= required ? "Yes" : "No") + ", score=" + format_score(r.score) +
           " required=" + format_score(required) + " tests=" + (tests.empty() ? "none" : tests);
}

}  // namespace ferry::verify::spam
