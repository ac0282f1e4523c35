// SPF (RFC 7208): record parsing, macros and check_host(), rerun over the answers gathered so far.
#include "common/verify/spf.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace ferry::verify::spf {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && lower(a) == lower(b);
}

// ---- macros (RFC 7208 7.1) ----

bool is_delimiter(char c) { return std::strchr(".-+,/_=", c) != nullptr && c != 0; }

// The value of macro letter `l` (lower case), or nullopt when the letter is not allowed.
std::optional<std::string> macro_value(char l, const MacroValues& v, bool explanation) {
    switch (l) {
        case 's': return v.sender;
        case 'l': return v.local;
        case 'o': return v.domain_of_sender;
        case 'd': return v.domain;
        case 'i': return v.ip;
        case 'p': return v.p.empty() ? std::string("unknown") : v.p;
        case 'v': return std::string(v.ipv6 ? "ip6" : "in-addr");
        case 'h': return v.helo;
        case 'c':
            if (!explanation) return std::nullopt;
            return v.ip_text.empty() ? v.ip : v.ip_text;
        case 'r':
            if (!explanation) return std::nullopt;
            return v.receiver.empty() ? std::string("unknown") : v.receiver;
        case 't':
            if (!explanation) return std::nullopt;
            return std::to_string(static_cast<long long>(v.now));
        default: return std::nullopt;
    }
}

// RFC 3986 unreserved characters stay, everything else is %XX (upper-case macro letters).
std::string url_escape(const std::string& s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') out += static_cast<char>(c);
        else { out += '%'; out += hex[c >> 4]; out += hex[c & 15]; }
    }
    return out;
}

// Splits on the delimiters, reverses and keeps the rightmost `keep` parts (0: all), joined by dots.
std::string transform(const std::string& value, int keep, bool reverse, const std::string& delims) {
    std::vector<std::string> parts(1);
    for (char c : value) {
        if (delims.find(c) != std::string::npos) parts.emplace_back();
        else parts.back() += c;
    }
    if (reverse) std::reverse(parts.begin(), parts.end());
    if (keep > 0 && static_cast<size_t>(keep) < parts.size()) parts.erase(parts.begin(), parts.end() - keep);
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? "." : "") + parts[i];
    return out;
}

// The expander and the syntax check share one walk; `v` null checks syntax only.
std::optional<std::string> walk_macros(std::string_view spec, const MacroValues* v, bool explanation) {
    std::string out;
    for (size_t i = 0; i < spec.size(); ++i) {
        char c = spec[i];
        if (c != '%') {
            if (static_cast<unsigned char>(c) < 0x21 && !(explanation && c == ' ')) return std::nullopt;
            if (static_cast<unsigned char>(c) > 0x7e) return std::nullopt;
            out += c;
            continue;
        }
        if (++i >= spec.size()) return std::nullopt;
        c = spec[i];
        if (c == '%') { out += '%'; continue; }
        if (c == '_') { out += ' '; continue; }
        if (c == '-') { out += "%20"; continue; }
        if (c != '{') return std::nullopt;
        size_t end = spec.find('}', i);
        if (end == std::string_view::npos || end == i + 1) return std::nullopt;
        std::string_view body = spec.substr(i + 1, end - i - 1);
        i = end;
        char letter = body[0];
        bool upper = std::isupper(static_cast<unsigned char>(letter));
        char l = static_cast<char>(std::tolower(static_cast<unsigned char>(letter)));
        if (!std::strchr("slodiphcrtv", l) || l == 0) return std::nullopt;
        if (!explanation && (l == 'c' || l == 'r' || l == 't')) return std::nullopt;
        size_t k = 1;
        int keep = 0;
        size_t digits = 0;
        while (k < body.size() && std::isdigit(static_cast<unsigned char>(body[k]))) {
            if (++digits > 3) return std::nullopt;
            keep = keep * 10 + (body[k++] - '0');
        }
        if (digits > 0 && keep == 0) return std::nullopt;  // RFC 7208 7.1: zero parts is an error
        bool reverse = false;
        if (k < body.size() && (body[k] == 'r' || body[k] == 'R')) { reverse = true; ++k; }
        std::string delims;
        for (; k < body.size(); ++k) {
            if (!is_delimiter(body[k])) return std::nullopt;
            delims += body[k];
        }
        if (!v) continue;
        auto value = macro_value(l, *v, explanation);
        if (!value) return std::nullopt;
        std::string t = transform(*value, keep, reverse, delims.empty() ? "." : delims);
        out += upper ? url_escape(t) : t;
        if (out.size() > kMaxExpansion) return std::nullopt;
    }
    return out;
}

// ---- addresses ----

struct Ip {
    bool v6 = false;
    unsigned char b[16]{};
};

std::optional<Ip> parse_ip(const std::string& s) {
    Ip ip;
    if (inet_pton(AF_INET, s.c_str(), ip.b) == 1) return ip;
    if (inet_pton(AF_INET6, s.c_str(), ip.b) != 1) return std::nullopt;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(ip.b, mapped, 12) == 0) {  // ::ffff:a.b.c.d is the IPv4 client (RFC 7208 5)
        std::memmove(ip.b, ip.b + 12, 4);
        std::memset(ip.b + 4, 0, 12);
        return ip;
    }
    ip.v6 = true;
    return ip;
}

bool same_network(const unsigned char* a, const unsigned char* b, int bits) {
    int whole = bits / 8, rest = bits % 8;
    if (std::memcmp(a, b, static_cast<size_t>(whole)) != 0) return false;
    if (rest == 0) return true;
    unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool address_matches(const Ip& client, const std::string& text, int cidr4, int cidr6) {
    auto ip = parse_ip(text);
    if (!ip || ip->v6 != client.v6) return false;
    return same_network(client.b, ip->b, client.v6 ? cidr6 : cidr4);
}

// %{i}: dotted IPv4, or IPv6 as 32 dot-separated nibbles (RFC 7208 7.3).
std::string ip_macro(const Ip& ip) {
    char buf[INET6_ADDRSTRLEN];
    if (!ip.v6) return inet_ntop(AF_INET, ip.b, buf, sizeof buf);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 16; ++i) {
        if (i) out += '.';
        out += hex[ip.b[i] >> 4];
        out += '.';
        out += hex[ip.b[i] & 15];
    }
    return out;
}

std::string ip_text(const Ip& ip) {
    char buf[INET6_ADDRSTRLEN];
    return inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.b, buf, sizeof buf);
}

// The PTR query name: d.c.b.a.in-addr.arpa or the nibbles of ip6.arpa.
std::string reverse_name(const Ip& ip) {
    std::string out;
    if (!ip.v6) {
        for (int i = 3; i >= 0; --i) out += std::to_string(ip.b[i]) + ".";
        return out + "in-addr.arpa";
    }
    static const char* hex = "0123456789abcdef";
    for (int i = 15; i >= 0; --i) {
        out += hex[ip.b[i] & 15];
        out += '.';
        out += hex[ip.b[i] >> 4];
        out += '.';
    }
    return out + "ip6.arpa";
}

// ---- record syntax (RFC 7208 4.6.1, 12) ----

bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// toplabel: letters, digits and inner hyphens, not all digits.
bool valid_toplabel(std::string_view l) {
    if (l.empty() || l.front() == '-' || l.back() == '-') return false;
    bool alpha = false;
    for (char c : l) {
        if (!alnum(c) && c != '-') return false;
        if (std::isalpha(static_cast<unsigned char>(c)) || c == '-') alpha = true;
    }
    return alpha;
}

// domain-spec = macro-string domain-end; domain-end = "." toplabel ["."] / macro-expand.
bool valid_domain_spec(std::string_view spec) {
    if (spec.empty() || !valid_macro_string(spec, false)) return false;
    if (spec.back() == '}') {
        size_t open = spec.rfind("%{");
        if (open != std::string_view::npos && spec.find('}', open) == spec.size() - 1) return true;
    }
    std::string_view s = spec;
    if (s.back() == '.') s.remove_suffix(1);
    size_t dot = s.rfind('.');
    if (dot == std::string_view::npos) return false;
    return valid_toplabel(s.substr(dot + 1));
}

// A decimal CIDR length without leading zeros, at most `max`.
bool parse_length(std::string_view s, int max, int& out) {
    if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) return false;
    int n = 0;
    for (char c : s) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
        n = n * 10 + (c - '0');
    }
    if (n > max) return false;
    out = n;
    return true;
}

// Splits "[:domain][/n][//m]" of a and mx; false on a syntax error.
bool parse_a_args(std::string_view rest, Term& t) {
    size_t dual = rest.rfind("//");
    if (dual != std::string_view::npos) {
        if (!parse_length(rest.substr(dual + 2), 128, t.cidr6)) return false;
        rest = rest.substr(0, dual);
    }
    size_t slash = rest.rfind('/');
    if (slash != std::string_view::npos && rest.find_first_not_of("0123456789", slash + 1) == std::string_view::npos) {
        if (!parse_length(rest.substr(slash + 1), 32, t.cidr4)) return false;
        rest = rest.substr(0, slash);
    }
    if (rest.empty()) return true;
    if (rest[0] != ':') return false;
    t.domain = std::string(rest.substr(1));
    return valid_domain_spec(t.domain);
}

bool parse_ip_term(std::string_view rest, Term& t, bool v6) {
    if (rest.empty() || rest[0] != ':') return false;
    rest.remove_prefix(1);
    size_t slash = rest.find('/');
    if (slash != std::string_view::npos) {
        if (!parse_length(rest.substr(slash + 1), v6 ? 128 : 32, v6 ? t.cidr6 : t.cidr4)) return false;
        rest = rest.substr(0, slash);
    }
    std::string addr(rest);
    return inet_pton(v6 ? AF_INET6 : AF_INET, addr.c_str(), t.addr) == 1;
}

// A mechanism's arguments by its kind; false on a syntax error.
bool parse_mechanism(Term& t, std::string_view rest) {
    switch (t.kind) {
        case Term::all: return rest.empty();
        case Term::include:
        case Term::exists:
            if (rest.size() < 2 || rest[0] != ':') return false;
            t.domain = std::string(rest.substr(1));
            return valid_domain_spec(t.domain);
        case Term::ptr:
            if (rest.empty()) return true;
            if (rest[0] != ':') return false;
            t.domain = std::string(rest.substr(1));
            return valid_domain_spec(t.domain);
        case Term::a:
        case Term::mx: return parse_a_args(rest, t);
        case Term::ip4: return parse_ip_term(rest, t, false);
        case Term::ip6: return parse_ip_term(rest, t, true);
        default: return false;
    }
}

std::optional<Term::Kind> mechanism_kind(const std::string& name) {
    static const std::pair<const char*, Term::Kind> kinds[] = {
        {"all", Term::all}, {"include", Term::include}, {"a", Term::a},     {"mx", Term::mx},
        {"ptr", Term::ptr}, {"ip4", Term::ip4},         {"ip6", Term::ip6}, {"exists", Term::exists}};
    for (const auto& [n, k] : kinds)
        if (name == n) return k;
    return std::nullopt;
}

// One term into `rec`; false on a syntax error.
bool parse_term(std::string_view word, Record& rec) {
    Term t;
    bool qualified = false;
    if (std::strchr("+-~?", word[0])) {
        t.qualifier = word[0];
        qualified = true;
        word.remove_prefix(1);
    }
    size_t n = 0;
    while (n < word.size() && (alnum(word[n]) || word[n] == '-' || word[n] == '_' || word[n] == '.')) ++n;
    if (n == 0 || !std::isalpha(static_cast<unsigned char>(word[0]))) return false;
    std::string name = lower(word.substr(0, n));
    std::string_view rest = word.substr(n);
    if (!rest.empty() && rest[0] == '=') {  // a modifier: name=macro-string, no qualifier
        if (qualified) return false;
        std::string_view value = rest.substr(1);
        if (name == "redirect" || name == "exp") {
            auto& slot = name == "redirect" ? rec.redirect : rec.exp;
            if (slot) return false;  // RFC 7208 6: each at most once
            t.kind = name == "redirect" ? Term::redirect : Term::exp;
            t.domain = std::string(value);
            if (!valid_domain_spec(t.domain)) return false;
            slot = t;
            return true;
        }
        if (!valid_macro_string(value, false)) return false;
        return true;  // unknown modifiers are ignored (RFC 7208 6)
    }
    auto kind = mechanism_kind(name);
    if (!kind) return false;
    t.kind = *kind;
    if (!parse_mechanism(t, rest)) return false;
    if (t.kind == Term::all) rec.has_all = true;
    rec.terms.push_back(std::move(t));
    return true;
}

}  // namespace

const char* result_name(Result r) {
    switch (r) {
        case Result::none: return "none";
        case Result::neutral: return "neutral";
        case Result::pass: return "pass";
        case Result::fail: return "fail";
        case Result::softfail: return "softfail";
        case Result::temperror: return "temperror";
        case Result::permerror: return "permerror";
    }
    return "none";
}

const char* query_type_name(QueryType t) {
    switch (t) {
        case QueryType::txt: return "TXT";
        case QueryType::a: return "A";
        case QueryType::aaaa: return "AAAA";
        case QueryType::mx: return "MX";
        case QueryType::ptr: return "PTR";
    }
    return "?";
}

bool valid_macro_string(std::string_view spec, bool explanation) {
    return walk_macros(spec, nullptr, explanation).has_value();
}

std::optional<std::string> expand(std::string_view spec, const MacroValues& v, bool explanation) {
    return walk_macros(spec, &v, explanation);
}

bool is_spf_record(std::string_view txt) {
    return txt.size() >= 6 && iequals(txt.substr(0, 6), "v=spf1") && (txt.size() == 6 || txt[6] == ' ');
}

std::optional<Record> parse_record(std::string_view txt, std::string* why) {
    auto fail = [&](std::string_view w) -> std::optional<Record> {
        if (why) *why = std::string(w.substr(0, 100));
        return std::nullopt;
    };
    if (txt.size() > kMaxRecordLength) return fail("record too long");
    if (!is_spf_record(txt)) return fail("not an SPF record");
    Record rec;
    size_t pos = 6, count = 0;
    while (pos < txt.size()) {
        if (txt[pos] == ' ') { ++pos; continue; }
        size_t end = txt.find(' ', pos);
        if (end == std::string_view::npos) end = txt.size();
        std::string_view word = txt.substr(pos, end - pos);
        if (++count > kMaxTerms) return fail("too many terms");
        if (!parse_term(word, rec)) return fail(word);
        pos = end;
    }
    return rec;
}

// ---- check_host() ----

namespace {

// Thrown when the evaluation needs an answer it does not have yet: step() hands the query out.
struct Need {
    Query query;
};

struct Outcome {
    Result result;
    std::string reason;
    std::string explanation;
};

class Evaluation {
public:
    Evaluation(const Request& req, const std::map<Query, Answer>& answers, const Ip& ip)
        : req_(req), answers_(answers), ip_(ip) {}

    Outcome check_host(const std::string& domain, const std::string& sender, bool top) {
        if (!valid_domain(domain)) return {Result::none, "no valid domain \"" + domain.substr(0, 100) + "\""};
        const Answer& txt = lookup(QueryType::txt, domain);
        if (txt.status == DnsStatus::error) return {Result::temperror, "DNS error looking up the TXT record of " + domain};
        std::vector<const std::string*> spf;
        for (const auto& r : txt.records)
            if (is_spf_record(r)) spf.push_back(&r);
        if (spf.empty()) return {Result::none, "no SPF record for " + domain};
        if (spf.size() > 1) return {Result::permerror, "more than one SPF record for " + domain};
        std::string why;
        auto rec = parse_record(*spf[0], &why);
        if (!rec) return {Result::permerror, "syntax error in the SPF record of " + domain + ": " + why};
        return evaluate(*rec, domain, sender, top);
    }

private:
    const Answer& lookup(QueryType type, const std::string& name) {
        Query q{type, name};
        auto it = answers_.find(q);
        if (it == answers_.end()) throw Need{std::move(q)};
        return it->second;
    }

    static bool valid_domain(const std::string& d) {
        if (d.empty() || d.size() > 253 || d.find('.') == std::string::npos) return false;
        size_t label = 0;
        for (size_t i = 0; i < d.size(); ++i) {
            if (d[i] == '.') {
                if (label == 0 && i + 1 != d.size()) return false;
                label = 0;
            } else if (++label > 63) {
                return false;
            }
        }
        return true;
    }

    MacroValues values(const std::string& domain, const std::string& sender) {
        MacroValues v;
        v.sender = sender;
        size_t at = sender.rfind('@');
        v.local = at == std::string::npos ? "postmaster" : sender.substr(0, at);
        v.domain_of_sender = at == std::string::npos ? sender : sender.substr(at + 1);
        v.domain = domain;
        v.ip = ip_macro(ip_);
        v.ip_text = ip_text(ip_);
        v.ipv6 = ip_.v6;
        v.helo = req_.helo;
        v.receiver = req_.receiver;
        v.now = req_.now;
        return v;
    }

    // A domain-spec expanded into a query name: lower case, no trailing dot, left labels cut to 253 (RFC 7208 7.3).
    std::optional<std::string> target(const Term& t, const std::string& domain, const std::string& sender) {
        if (t.domain.empty()) return domain;
        MacroValues v = values(domain, sender);
        if (t.domain.find("%{p") != std::string::npos || t.domain.find("%{P") != std::string::npos) v.p = validated_name(domain);
        auto s = expand(t.domain, v, false);
        if (!s) return std::nullopt;
        std::string name = lower(*s);
        if (!name.empty() && name.back() == '.') name.pop_back();
        while (name.size() > 253) {
            size_t dot = name.find('.');
            if (dot == std::string::npos) return std::nullopt;
            name.erase(0, dot + 1);
        }
        return name;
    }

    void count_term() {
        if (++terms_ > kMaxDnsTerms) throw Limit{"more than " + std::to_string(kMaxDnsTerms) + " DNS-querying terms"};
    }

    void count_void(const Answer& a) {
        if ((a.status == DnsStatus::nxdomain || a.status == DnsStatus::nodata ||
             (a.status == DnsStatus::ok && a.records.empty())) &&
            ++voids_ > kMaxVoidLookups)
            throw Limit{"more than " + std::to_string(kMaxVoidLookups) + " void DNS lookups"};
    }

    // The client's address family of `name`'s addresses; error: a temporary DNS failure.
    const Answer& addresses(const std::string& name, bool v6) { return lookup(v6 ? QueryType::aaaa : QueryType::a, name); }

    // The names of the client's PTR records that resolve back to it, at most kMaxNames tried.
    std::vector<std::string> validated_names() {
        const Answer& ptr = lookup(QueryType::ptr, reverse_name(ip_));
        std::vector<std::string> out;
        if (ptr.status != DnsStatus::ok) return out;
        for (size_t i = 0; i < ptr.records.size() && i < kMaxNames; ++i) {
            // DNS names compare without regard to case, and servers answer PTRs in any case (RFC 4343).
            std::string name = lower(ptr.records[i]);
            if (!name.empty() && name.back() == '.') name.pop_back();
            const Answer& a = addresses(name, ip_.v6);
            if (a.status != DnsStatus::ok) continue;
            for (const auto& addr : a.records)
                if (address_matches(ip_, addr, 32, 128)) { out.push_back(name); break; }
        }
        return out;
    }

    static bool in_domain(const std::string& name, const std::string& domain) {
        return name == domain || (name.size() > domain.size() && name.compare(name.size() - domain.size(), domain.size(), domain) == 0 &&
                                  name[name.size() - domain.size() - 1] == '.');
    }

    // %{p} (RFC 7208 7.3): the validated name in the domain, else any validated name, else "unknown".
    std::string validated_name(const std::string& domain) {
        auto names = validated_names();
        for (const auto& n : names)
            if (in_domain(n, domain)) return n;
        return names.empty() ? "unknown" : names[0];
    }

    // Whether a mechanism matches; temperror and permerror come back as Outcome.
    std::variant<bool, Outcome> matches(const Term& t, const std::string& domain, const std::string& sender) {
        switch (t.kind) {
            case Term::all: return true;
            case Term::ip4: return !ip_.v6 && same_network(ip_.b, t.addr, t.cidr4);
            case Term::ip6: return ip_.v6 && same_network(ip_.b, t.addr, t.cidr6);
            case Term::include: {
                count_term();
                auto name = target(t, domain, sender);
                if (!name) return Outcome{Result::permerror, "bad macro in include:" + t.domain};
                Outcome inner = check_host(*name, sender, false);
                switch (inner.result) {
                    case Result::pass: return true;
                    case Result::fail: case Result::softfail: case Result::neutral: return false;
                    case Result::temperror: return inner;
                    default: return Outcome{Result::permerror, "include:" + *name + ": " + inner.reason};
                }
            }
            case Term::a: {
                count_term();
                auto name = target(t, domain, sender);
                if (!name) return Outcome{Result::permerror, "bad macro in a:" + t.domain};
                return host_matches(*name, t, true);
            }
            case Term::mx: {
                count_term();
                auto name = target(t, domain, sender);
                if (!name) return Outcome{Result::permerror, "bad macro in mx:" + t.domain};
                const Answer& mx = lookup(QueryType::mx, *name);
                if (mx.status == DnsStatus::error) return Outcome{Result::temperror, "DNS error looking up the MX of " + *name};
                count_void(mx);
                if (mx.records.size() > kMaxNames) return Outcome{Result::permerror, "more than 10 MX records for " + *name};
                for (const auto& ex : mx.records) {
                    if (ex.empty()) continue;  // a null MX names no host
                    auto m = host_matches(ex, t, false);
                    if (!std::holds_alternative<bool>(m) || std::get<bool>(m)) return m;
                }
                return false;
            }
            case Term::ptr: {
                count_term();
                auto name = target(t, domain, sender);
                if (!name) return Outcome{Result::permerror, "bad macro in ptr:" + t.domain};
                count_void(lookup(QueryType::ptr, reverse_name(ip_)));
                for (const auto& n : validated_names())
                    if (in_domain(n, *name)) return true;
                return false;
            }
            case Term::exists: {
                count_term();
                auto name = target(t, domain, sender);
                if (!name) return Outcome{Result::permerror, "bad macro in exists:" + t.domain};
                const Answer& a = lookup(QueryType::a, *name);  // always A, whatever the client (RFC 7208 5.7)
                if (a.status == DnsStatus::error) return Outcome{Result::temperror, "DNS error looking up " + *name};
                count_void(a);
                return a.status == DnsStatus::ok && !a.records.empty();
            }
            default: return false;
        }
    }

    // a (and each host of mx): does `name` have the client's address within the CIDR lengths?
    std::variant<bool, Outcome> host_matches(const std::string& name, const Term& t, bool count) {
        if (!valid_domain(name)) return false;
        const Answer& a = addresses(name, ip_.v6);
        if (a.status == DnsStatus::error) return Outcome{Result::temperror, "DNS error looking up the addresses of " + name};
        if (count) count_void(a);
        for (const auto& addr : a.records)
            if (address_matches(ip_, addr, t.cidr4, t.cidr6)) return true;
        return false;
    }

    Outcome evaluate(const Record& rec, const std::string& domain, const std::string& sender, bool top) {
        for (const auto& t : rec.terms) {
            auto m = matches(t, domain, sender);
            if (auto* o = std::get_if<Outcome>(&m)) return *o;
            if (!std::get<bool>(m)) continue;
            Outcome out{qualifier_result(t.qualifier), matched_text(t)};
            if (out.result == Result::fail && top) out.explanation = explanation(rec, domain, sender);
            return out;
        }
        // RFC 7208 6.1: redirect only when nothing matched and there is no "all".
        if (rec.redirect && !rec.has_all) {
            count_term();
            auto name = target(*rec.redirect, domain, sender);
            if (!name) return {Result::permerror, "bad macro in redirect=" + rec.redirect->domain};
            Outcome inner = check_host(*name, sender, top);
            if (inner.result == Result::none) return {Result::permerror, "redirect=" + *name + ": " + inner.reason};
            return inner;
        }
        return {Result::neutral, "no mechanism matched in the SPF record of " + domain};
    }

    static Result qualifier_result(char q) {
        switch (q) {
            case '-': return Result::fail;
            case '~': return Result::softfail;
            case '?': return Result::neutral;
            default: return Result::pass;
        }
    }

    static std::string matched_text(const Term& t) {
        static const char* names[] = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"};
        std::string s = std::string(1, t.qualifier) + names[t.kind];
        if (!t.domain.empty()) s += ":" + t.domain;
        if (t.kind == Term::ip4 || t.kind == Term::ip6) {
            char buf[INET6_ADDRSTRLEN];
            bool v6 = t.kind == Term::ip6;
            s += std::string(":") + inet_ntop(v6 ? AF_INET6 : AF_INET, t.addr, buf, sizeof buf) + "/" +
                 std::to_string(v6 ? t.cidr6 : t.cidr4);
        }
        return "matched " + s;
    }

    // The exp= text (RFC 7208 6.2), "" when there is none or it cannot be had.
    std::string explanation(const Record& rec, const std::string& domain, const std::string& sender) {
        if (!rec.exp) return {};
        auto name = target(*rec.exp, domain, sender);
        if (!name || !valid_domain(*name)) return {};
        const Answer& txt = lookup(QueryType::txt, *name);
        if (txt.status != DnsStatus::ok || txt.records.size() != 1) return {};
        MacroValues v = values(domain, sender);
        if (txt.records[0].find("%{p") != std::string::npos || txt.records[0].find("%{P") != std::string::npos)
            v.p = validated_name(domain);
        auto text = expand(txt.records[0], v, true);
        if (!text) return {};
        for (char c : *text)
            if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return {};
        return *text;
    }

public:
    struct Limit {
        std::string why;
    };

private:
    const Request& req_;
    const std::map<Query, Answer>& answers_;
    Ip ip_;
    int terms_ = 0;
    int voids_ = 0;
};

}  // namespace

Check::Check(Request req) : req_(std::move(req)) {}

void Check::answer(const Query& q, Answer a) { answers_[q] = std::move(a); }

Verdict identities(const Request& req) {
    Verdict v;
    // RFC 7208 2.3, 4.3: MAIL FROM, or postmaster@helo for the null reverse-path.
    bool helo = req.sender.empty();
    v.identity = helo ? "helo" : "mailfrom";
    v.sender = helo ? "postmaster@" + req.helo : req.sender;
    size_t at = v.sender.rfind('@');
    v.domain = lower(at == std::string::npos ? v.sender : v.sender.substr(at + 1));
    if (at == 0) v.sender = "postmaster" + v.sender;  // an empty local-part is "postmaster" (RFC 7208 4.3)
    if (!v.domain.empty() && v.domain.back() == '.') v.domain.pop_back();
    return v;
}

std::variant<Verdict, Query> Check::step() {
    Verdict v = identities(req_);
    auto ip = parse_ip(req_.ip);
    if (!ip) {
        v.result = Result::none;
        v.reason = "no client address";
        return v;
    }
    Evaluation e(req_, answers_, *ip);
    try {
        Outcome o = e.check_host(v.domain, v.sender, true);
        v.result = o.result;
        v.reason = std::move(o.reason);
        v.explanation = std::move(o.explanation);
    } catch (Need& n) {
        return std::move(n.query);
    } catch (Evaluation::Limit& l) {
        v.result = Result::permerror;
        v.reason = l.why;
    }
    return v;
}

}  // namespace ferry::verify::spf
