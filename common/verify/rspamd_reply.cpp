// rspamd's /checkv2 reply: a recursive-descent JSON reader (RFC 8259) bounded in size, depth and strings.
#include "common/verify/rspamd_reply.hpp"

#include <charconv>
#include <cmath>

#include "common/mail/mime_decode.hpp"

namespace ferry::verify::spam {

namespace {

class Reader {
public:
    Reader(std::string_view s, const RspamdLimits& limits) : s_(s), limits_(limits) {}

    std::string why;

    void ws() {
        while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t' || s_[at_] == '\n' || s_[at_] == '\r')) ++at_;
    }
    bool at_end() {
        ws();
        return at_ == s_.size();
    }
    bool fail(const char* what) {
        if (why.empty()) why = std::string(what) + " at octet " + std::to_string(at_);
        return false;
    }
    char peek() {
        ws();
        return at_ < s_.size() ? s_[at_] : '\0';
    }
    bool eat(char c) {
        if (peek() != c) return false;
        ++at_;
        return true;
    }

    // A string; its unescaped UTF-8 goes to `out` when given.
    bool string(std::string* out) {
        if (!eat('"')) return fail("string expected");
        std::string text;
        while (true) {
            if (at_ >= s_.size()) return fail("unterminated string");
            unsigned char c = static_cast<unsigned char>(s_[at_++]);
            if (c == '"') break;
            if (c < 0x20) return fail("control character in a string");
            if (c != '\\') {
                text += static_cast<char>(c);
            } else if (!escape(text)) {
                return false;
            }
            if (text.size() > limits_.max_string) return fail("string too long");
        }
        if (out) *out = std::move(text);
        return true;
    }

    bool number(double* out) {
        ws();
        size_t start = at_;
        if (at_ < s_.size() && s_[at_] == '-') ++at_;
        if (at_ >= s_.size() || !digit(s_[at_])) return fail("number expected");
        if (s_[at_] == '0') ++at_;
        else digits();
        if (at_ < s_.size() && s_[at_] == '.') {
            ++at_;
            if (!digits()) return fail("digits expected after '.'");
        }
        if (at_ < s_.size() && (s_[at_] == 'e' || s_[at_] == 'E')) {
            ++at_;
            if (at_ < s_.size() && (s_[at_] == '+' || s_[at_] == '-')) ++at_;
            if (!digits()) return fail("digits expected in an exponent");
        }
        double v = 0;
        auto [end, ec] = std::from_chars(s_.data() + start, s_.data() + at_, v);
        if (ec != std::errc() || end != s_.data() + at_ || !std::isfinite(v)) return fail("number out of range");
        if (out) *out = v;
        return true;
    }

    bool literal(std::string_view word) {
        ws();
        if (s_.substr(at_, word.size()) != word) return fail("value expected");
        at_ += word.size();
        return true;
    }

    // Any value, read for its syntax only.
    bool skip(size_t depth) {
        switch (peek()) {
            case '{': return object(depth, [this](const std::string&, size_t d) { return skip(d); });
            case '[': return array(depth);
            case '"': return string(nullptr);
            case 't': return literal("true");
            case 'f': return literal("false");
            case 'n': return literal("null");
            default: return number(nullptr);
        }
    }

    // An object; `member(name, depth)` reads each member's value.
    template <typename Member>
    bool object(size_t depth, Member member) {
        if (depth > limits_.max_depth) return fail("nested too deep");
        if (!eat('{')) return fail("object expected");
        if (eat('}')) return true;
        do {
            std::string name;
            if (!string(&name)) return false;
            if (!eat(':')) return fail("':' expected");
            if (!member(name, depth + 1)) return false;
        } while (eat(','));
        return eat('}') || fail("',' or '}' expected");
    }

private:
    static bool digit(char c) { return c >= '0' && c <= '9'; }
    bool digits() {
        size_t start = at_;
        while (at_ < s_.size() && digit(s_[at_])) ++at_;
        return at_ > start;
    }

    bool array(size_t depth) {
        if (depth > limits_.max_depth) return fail("nested too deep");
        eat('[');
        if (eat(']')) return true;
        do {
            if (!skip(depth + 1)) return false;
        } while (eat(','));
        return eat(']') || fail("',' or ']' expected");
    }

    bool hex4(unsigned& out) {
        if (at_ + 4 > s_.size()) return fail("short \\u escape");
        out = 0;
        for (int i = 0; i < 4; ++i) {
            char c = s_[at_++];
            unsigned d = digit(c) ? unsigned(c - '0') : (c >= 'a' && c <= 'f') ? unsigned(c - 'a' + 10)
                         : (c >= 'A' && c <= 'F') ? unsigned(c - 'A' + 10) : 16;
            if (d == 16) return fail("bad \\u escape");
            out = out * 16 + d;
        }
        return true;
    }

    // After a backslash: one escape, appended as UTF-8 (a lone surrogate becomes U+FFFD).
    bool escape(std::string& text) {
        if (at_ >= s_.size()) return fail("unterminated string");
        char e = s_[at_++];
        switch (e) {
            case '"': case '\\': case '/': text += e; return true;
            case 'b': text += '\b'; return true;
            case 'f': text += '\f'; return true;
            case 'n': text += '\n'; return true;
            case 'r': text += '\r'; return true;
            case 't': text += '\t'; return true;
            case 'u': break;
            default: return fail("bad escape");
        }
        unsigned cp = 0;
        if (!hex4(cp)) return false;
        if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(at_, 2) == "\\u") {
            size_t back = at_;
            at_ += 2;
            unsigned low = 0;
            if (!hex4(low)) return false;
            if (low >= 0xDC00 && low < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            else at_ = back;
        }
        if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
        mail::append_utf8(text, static_cast<char32_t>(cp));
        return true;
    }

    std::string_view s_;
    const RspamdLimits& limits_;
    size_t at_ = 0;
};

// One member of "symbols": {"name": "...", "score": 1.5, ...}; other values are read and dropped.
bool symbol(Reader& r, const std::string& name, size_t depth, RspamdReply& out, const RspamdLimits& limits) {
    if (r.peek() != '{') return r.skip(depth);
    std::optional<double> score;
    bool ok = r.object(depth, [&](const std::string& key, size_t d) {
        if (key != "score") return r.skip(d);
        double v = 0;
        if (!r.number(&v)) return false;
        score = v;
        return true;
    });
    if (ok && score && out.symbols.size() < limits.max_symbols) out.symbols.emplace_back(name, *score);
    return ok;
}

}  // namespace

std::optional<RspamdReply> parse_rspamd_reply(std::string_view json, std::string* why, const RspamdLimits& limits) {
    auto refuse = [&](std::string text) -> std::optional<RspamdReply> {
        if (why) *why = std::move(text);
        return std::nullopt;
    };
    if (json.size() > limits.max_bytes) return refuse("reply too long");
    Reader r(json, limits);
    RspamdReply out;
    bool has_score = false;
    bool ok = r.object(1, [&](const std::string& key, size_t d) {
        if (key == "score" || key == "required_score") {
            if (!r.number(key == "score" ? &out.score : &out.required_score)) return false;
            has_score = has_score || key == "score";
            return true;
        }
        if (key == "action") return r.string(&out.action);
        if (key == "is_skipped") {
            out.skipped = r.peek() == 't';
            return r.literal(out.skipped ? "true" : "false");
        }
        if (key == "symbols" && r.peek() == '{')
            return r.object(d, [&](const std::string& name, size_t sd) { return symbol(r, name, sd, out, limits); });
        return r.skip(d);
    });
    if (!ok) return refuse(r.why);
    if (!r.at_end()) return refuse("text after the reply");
    if (!has_score) return refuse("no \"score\"");
    return out;
}

}  // namespace ferry::verify::spam
