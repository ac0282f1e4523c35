// DMARC (RFC 7489): the record parser, the organisational domain through libpsl, alignment and the verdict.
#include "common/verify/dmarc.hpp"

#include <libpsl.h>

#include <algorithm>
#include <cctype>

#include "common/verify/dkim_sig.hpp"

namespace ferry::verify::dmarc {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!out.empty() && out.back() == '.') out.pop_back();
    return out;
}

std::optional<Policy> policy_of(std::string_view v) {
    std::string p = lower(v);
    if (p == "none") return Policy::none;
    if (p == "quarantine") return Policy::quarantine;
    if (p == "reject") return Policy::reject;
    return std::nullopt;
}

// The system's list (Debian's publicsuffix package) when it can be read, else libpsl's built-in one.
const psl_ctx_t* suffix_list() {
    static const psl_ctx_t* list = [] {
        const psl_ctx_t* l = psl_latest(nullptr);
        return l ? l : psl_builtin();
    }();
    return list;
}

}  // namespace

const char* policy_name(Policy p) {
    return p == Policy::reject ? "reject" : p == Policy::quarantine ? "quarantine" : "none";
}

const char* result_name(Result r) {
    switch (r) {
        case Result::none: return "none";
        case Result::pass: return "pass";
        case Result::fail: return "fail";
        case Result::temperror: return "temperror";
        case Result::permerror: return "permerror";
    }
    return "none";
}

bool is_dmarc_record(std::string_view txt) {
    if (txt.substr(0, 8) != "v=DMARC1") return false;
    return txt.size() == 8 || txt[8] == ';' || txt[8] == ' ' || txt[8] == '\t';
}

std::optional<Record> parse_record(std::string_view txt, std::string* why) {
    auto tags = dkim::parse_tag_list(txt, why);
    if (!tags || tags->empty() || tags->front().first != "v" || tags->front().second != "DMARC1") {
        if (why) *why = "not a DMARC1 record";
        return std::nullopt;
    }
    Record r;
    bool has_p = false;
    for (const auto& [name, value] : *tags) {
        if (name == "p") {
            auto p = policy_of(value);
            if (!p) break;
            r.p = *p;
            has_p = true;
        } else if (name == "sp") {
            r.sp = policy_of(value);
        } else if (name == "pct") {
            if (!value.empty() && value.size() <= 3 && std::all_of(value.begin(), value.end(), ::isdigit))
                r.pct = std::min(100, std::stoi(value));
        } else if (name == "adkim") {
            r.strict_dkim = value == "s";
        } else if (name == "aspf") {
            r.strict_spf = value == "s";
        }
    }
    if (!has_p) {
        if (why) *why = "no valid p=";
        return std::nullopt;
    }
    return r;
}

std::string organizational_domain(const std::string& domain) {
    std::string d = lower(domain);
    const psl_ctx_t* list = suffix_list();
    const char* reg = list ? psl_registrable_domain(list, d.c_str()) : nullptr;
    return reg ? std::string(reg) : d;  // points into `d`: copied before `d` goes
}

bool aligned(const std::string& a, const std::string& b, bool strict) {
    std::string x = lower(a), y = lower(b);
    if (x.empty() || y.empty()) return false;
    return strict ? x == y : organizational_domain(x) == organizational_domain(y);
}

Verdict evaluate(const Identities& ids, const Record& rec, const std::string& record_domain, int sample) {
    Verdict v;
    std::string from = lower(ids.from_domain);
    // sp= applies when the record was found at the organisational domain, not the From: domain itself.
    v.policy = lower(record_domain) != from && rec.sp ? *rec.sp : rec.p;
    for (const auto& d : ids.dkim_domains)
        if (aligned(d, from, rec.strict_dkim)) {
            v.result = Result::pass;
            v.reason = "dkim";
            return v;
        }
    if (!ids.spf_domain.empty() && aligned(ids.spf_domain, from, rec.strict_spf)) {
        v.result = Result::pass;
        v.reason = "spf";
        return v;
    }
    v.result = Result::fail;
    v.reason = "no aligned SPF or DKIM pass";
    v.enforce = sample < rec.pct;
    v.disposition = v.enforce ? v.policy : v.policy == Policy::reject ? Policy::quarantine : Policy::none;
    return v;
}

std::string from_domain(std::string_view value) {
    size_t lt = value.find('<');
    std::string_view addr = value;
    if (lt != std::string_view::npos) {
        size_t gt = value.find('>', lt);
        if (gt == std::string_view::npos || value.find('<', gt) != std::string_view::npos) return "";
        addr = value.substr(lt + 1, gt - lt - 1);
    } else if (value.find(',') != std::string_view::npos) {
        return "";
    }
    size_t at = addr.rfind('@');
    if (at == std::string_view::npos) return "";
    std::string_view d = addr.substr(at + 1);
    while (!d.empty() && std::isspace(static_cast<unsigned char>(d.front()))) d.remove_prefix(1);
    size_t end = 0;
    while (end < d.size() && !std::isspace(static_cast<unsigned char>(d[end])) && d[end] != '>' && d[end] != ')') ++end;
    std::string out = lower(d.substr(0, end));
    if (out.empty() || out.find("..") != std::string::npos || out.front() == '.') return "";
    return out;
}

}  // namespace ferry::verify::dmarc
