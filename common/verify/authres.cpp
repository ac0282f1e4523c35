// Authentication-Results (RFC 8601 section 2.2): a recursive-descent reader over the field's value, with limits.
#include "common/verify/authres.hpp"

#include <cctype>

namespace ferry::verify::authres {
namespace {

std::string lower(std::string_view s) {
    std::string r(s);
    for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

bool keyword_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
}

// MIME token characters (RFC 2045 5.1): no space, controls or tspecials.
bool token_char(char c) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127) return u >= 128;  // UTF-8 octets pass (RFC 8616)
    return std::string_view("()<>@,;:\\\"/[]?=").find(c) == std::string_view::npos;
}

class Reader {
public:
    explicit Reader(std::string_view s) : s_(s) {}

    bool at_end() const { return p_ >= s_.size(); }
    bool bad() const { return bad_; }
    char peek() const { return at_end() ? '\0' : s_[p_]; }
    bool take(char c) {
        if (peek() != c || at_end()) return false;
        ++p_;
        return true;
    }

    // Folding white space and comments, nested, with quoted pairs (RFC 5322 3.2.2).
    void cfws() {
        while (!at_end()) {
            char c = s_[p_];
            if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
                ++p_;
            } else if (c == '(') {
                comment();
                if (bad_) return;
            } else {
                return;
            }
        }
    }

    std::string keyword() {
        size_t b = p_;
        while (!at_end() && keyword_char(s_[p_])) ++p_;
        return lower(s_.substr(b, p_ - b));
    }

    // value = token / quoted-string (RFC 2045).
    std::optional<std::string> value() {
        if (peek() == '"') return quoted();
        size_t b = p_;
        while (!at_end() && token_char(s_[p_])) ++p_;
        if (p_ == b) return std::nullopt;
        return std::string(s_.substr(b, p_ - b));
    }

    // pvalue = value / [[local-part] "@"] domain-name: a quoted local part may come before the "@".
    std::optional<std::string> pvalue() {
        std::string out;
        if (peek() == '"') {
            auto q = quoted();
            if (!q) return std::nullopt;
            if (peek() != '@') return q;
            out = "\"" + *q + "\"";
        }
        size_t b = p_;
        while (!at_end()) {
            char c = s_[p_];
            if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';' || c == '(' || c == ')' || c == '"') break;
            ++p_;
        }
        out += s_.substr(b, p_ - b);
        if (out.empty()) return std::nullopt;
        return out;
    }

private:
    void comment() {
        size_t depth = 0;
        while (!at_end()) {
            char c = s_[p_++];
            if (c == '\\') {
                if (at_end()) break;
                ++p_;
            } else if (c == '(') {
                if (++depth > kMaxCommentDepth) break;
            } else if (c == ')') {
                if (--depth == 0) return;
            }
        }
        bad_ = true;  // unclosed, or nested too deep
    }

    std::optional<std::string> quoted() {
        ++p_;  // the opening quote
        std::string out;
        while (!at_end()) {
            char c = s_[p_++];
            if (c == '"') return out;
            if (c == '\\') {
                if (at_end()) break;
                c = s_[p_++];
            } else if (c == '\r' || c == '\n') {
                continue;  // folding inside the string
            }
            out += c;
        }
        return std::nullopt;
    }

    std::string_view s_;
    size_t p_ = 0;
    bool bad_ = false;
};

// methodspec [CFWS reasonspec] [CFWS 1*propspec], after the ";" and its CFWS.
std::optional<Result> resinfo(Reader& r) {
    Result res;
    res.method = r.keyword();
    if (res.method.empty()) return std::nullopt;
    r.cfws();
    if (r.take('/')) {
        r.cfws();
        res.version = r.keyword();
        if (res.version.empty()) return std::nullopt;
        r.cfws();
    }
    if (!r.take('=')) return std::nullopt;
    r.cfws();
    res.result = r.keyword();
    if (res.result.empty()) return std::nullopt;
    for (;;) {
        r.cfws();
        if (r.bad()) return std::nullopt;
        if (r.at_end() || r.peek() == ';') return res;
        std::string word = r.keyword();
        if (word.empty()) return std::nullopt;
        r.cfws();
        if (word == "reason" && r.peek() == '=') {
            r.take('=');
            r.cfws();
            auto v = r.value();
            if (!v) return std::nullopt;
            res.reason = *v;
            continue;
        }
        if (!r.take('.')) return std::nullopt;
        r.cfws();
        Property prop{word, r.keyword(), {}};
        if (prop.property.empty()) return std::nullopt;
        r.cfws();
        if (!r.take('=')) return std::nullopt;
        r.cfws();
        auto v = r.pvalue();
        if (!v) return std::nullopt;
        prop.value = std::move(*v);
        if (res.properties.size() >= kMaxProperties) return std::nullopt;
        res.properties.push_back(std::move(prop));
    }
}

}  // namespace

std::optional<std::string> Result::property(std::string_view ptype, std::string_view name) const {
    for (const auto& p : properties)
        if (p.ptype == lower(ptype) && p.property == lower(name)) return p.value;
    return std::nullopt;
}

std::optional<Results> parse(std::string_view value) {
    if (value.size() > kMaxValue) return std::nullopt;
    Reader r(value);
    Results out;
    r.cfws();
    auto id = r.value();
    if (!id || id->empty() || r.bad()) return std::nullopt;
    out.authserv_id = std::move(*id);
    r.cfws();
    while (std::isdigit(static_cast<unsigned char>(r.peek()))) {
        out.version += r.peek();
        r.take(r.peek());
    }
    r.cfws();
    if (r.bad() || !r.take(';')) return std::nullopt;
    r.cfws();
    // no-result: "; none" alone.
    {
        Reader probe = r;
        if (probe.keyword() == "none") {
            probe.cfws();
            if (probe.at_end() && !probe.bad()) return out;
        }
    }
    for (;;) {
        if (r.bad()) return std::nullopt;
        if (r.at_end()) return out.results.empty() ? std::nullopt : std::optional<Results>(std::move(out));
        auto res = resinfo(r);
        if (!res || out.results.size() >= kMaxResults) return std::nullopt;
        out.results.push_back(std::move(*res));
        if (r.at_end()) return out;
        if (!r.take(';')) return std::nullopt;
        r.cfws();
    }
}

const Result* find(const Results& r, std::string_view method) {
    for (const auto& res : r.results)
        if (res.method == lower(method)) return &res;
    return nullptr;
}

}  // namespace ferry::verify::authres
