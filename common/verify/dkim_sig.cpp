// DKIM tag lists, the DKIM-Signature field and the key record (RFC 6376 3.2, 3.5, 3.6.1).
#include "common/verify/dkim_sig.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace ferry::verify::dkim {

namespace {

bool wsp(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && wsp(s.front())) s.remove_prefix(1);
    while (!s.empty() && wsp(s.back())) s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool fail(std::string* why, const char* text) {
    if (why) *why = text;
    return false;
}

// tag-name = ALPHA *ALNUMPUNC
bool valid_tag_name(std::string_view n) {
    if (n.empty() || !std::isalpha(static_cast<unsigned char>(n[0]))) return false;
    return std::all_of(n.begin(), n.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

const std::string* find(const std::vector<Tag>& tags, std::string_view name) {
    for (const auto& t : tags)
        if (t.first == name) return &t.second;
    return nullptr;
}

std::string without_space(std::string_view s) {
    std::string out;
    for (char c : s)
        if (!wsp(c)) out += c;
    return out;
}

template <typename T>
std::optional<T> number(std::string_view s) {
    T v{};
    if (s.empty() || s.size() > 18 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t end = s.find(sep, start);
        out.push_back(std::string(trim(s.substr(start, end == std::string_view::npos ? end : end - start))));
        if (end == std::string_view::npos) return out;
        start = end + 1;
    }
}

bool parse_canon(std::string_view c, Signature& s) {
    auto one = [](std::string_view w, Canon& out) {
        if (w == "simple") out = Canon::simple;
        else if (w == "relaxed") out = Canon::relaxed;
        else return false;
        return true;
    };
    size_t slash = c.find('/');
    if (slash == std::string_view::npos) return one(c, s.header_canon);
    return one(c.substr(0, slash), s.header_canon) && one(c.substr(slash + 1), s.body_canon);
}

// i= must be d= or a subdomain of it (RFC 6376 3.5).
bool identity_in_domain(const std::string& identity, const std::string& domain) {
    size_t at = identity.rfind('@');
    if (at == std::string::npos) return false;
    std::string idom = lower(identity.substr(at + 1));
    return idom == domain || (idom.size() > domain.size() && idom.compare(idom.size() - domain.size(), domain.size(), domain) == 0 &&
                              idom[idom.size() - domain.size() - 1] == '.');
}

bool required_tags(const std::vector<Tag>& tags, std::string* why) {
    for (const char* t : {"v", "a", "b", "bh", "d", "h", "s"})
        if (!find(tags, t)) {
            if (why) *why = std::string("missing tag ") + t;
            return false;
        }
    return true;
}

bool signature_tags(const std::vector<Tag>& tags, Signature& s, std::string* why) {
    if (*find(tags, "v") != "1") return fail(why, "v= is not 1");
    const std::string& a = *find(tags, "a");
    if (a == "rsa-sha256") s.algorithm = Algorithm::rsa_sha256;
    else if (a == "ed25519-sha256") s.algorithm = Algorithm::ed25519_sha256;
    else return fail(why, "unsupported algorithm");
    auto bh = decode_base64(*find(tags, "bh"));
    s.b_text = without_space(*find(tags, "b"));
    auto b = decode_base64(s.b_text);
    if (!bh || !b || bh->empty() || b->empty()) return fail(why, "bad base64 in b= or bh=");
    s.body_hash = std::move(*bh);
    s.signature = std::move(*b);
    s.domain = lower(*find(tags, "d"));
    s.selector = lower(*find(tags, "s"));
    if (s.domain.empty() || s.selector.empty()) return fail(why, "empty d= or s=");
    if (const std::string* c = find(tags, "c"); c && !parse_canon(*c, s)) return fail(why, "bad c=");
    for (auto& h : split(*find(tags, "h"), ':')) {
        if (h.empty()) return fail(why, "empty name in h=");
        s.headers.push_back(lower(h));
    }
    if (s.headers.size() > kMaxSignedFields) return fail(why, "too many fields in h=");
    if (std::find(s.headers.begin(), s.headers.end(), "from") == s.headers.end()) return fail(why, "h= does not sign From");
    return true;
}

bool optional_tags(const std::vector<Tag>& tags, Signature& s, std::string* why) {
    const std::string* i = find(tags, "i");
    s.identity = i ? *i : "@" + s.domain;
    if (!identity_in_domain(s.identity, s.domain)) return fail(why, "i= is not in d=");
    if (const std::string* l = find(tags, "l")) {
        if (!(s.length = number<uint64_t>(*l))) return fail(why, "bad l=");
    }
    if (const std::string* t = find(tags, "t")) {
        if (!(s.timestamp = number<int64_t>(*t))) return fail(why, "bad t=");
    }
    if (const std::string* x = find(tags, "x")) {
        if (!(s.expiry = number<int64_t>(*x))) return fail(why, "bad x=");
        if (s.timestamp && *s.expiry < *s.timestamp) return fail(why, "x= is before t=");
    }
    if (const std::string* q = find(tags, "q")) {
        auto methods = split(*q, ':');
        if (std::find(methods.begin(), methods.end(), "dns/txt") == methods.end()) return fail(why, "q= without dns/txt");
    }
    return true;
}

}  // namespace

const char* algorithm_name(Algorithm a) { return a == Algorithm::rsa_sha256 ? "rsa-sha256" : "ed25519-sha256"; }

std::optional<std::vector<Tag>> parse_tag_list(std::string_view text, std::string* why) {
    if (text.size() > kMaxTagListLength) return fail(why, "too long"), std::nullopt;
    std::vector<Tag> tags;
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find(';', start);
        std::string_view spec = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
        start = end == std::string_view::npos ? text.size() + 1 : end + 1;
        if (trim(spec).empty()) {
            if (end == std::string_view::npos) break;  // the optional ";" at the end
            return fail(why, "empty tag"), std::nullopt;
        }
        size_t eq = spec.find('=');
        if (eq == std::string_view::npos) return fail(why, "tag without ="), std::nullopt;
        std::string name(trim(spec.substr(0, eq)));
        if (!valid_tag_name(name)) return fail(why, "bad tag name"), std::nullopt;
        if (find(tags, name)) return fail(why, "repeated tag"), std::nullopt;
        if (tags.size() == kMaxTags) return fail(why, "too many tags"), std::nullopt;
        tags.emplace_back(std::move(name), std::string(trim(spec.substr(eq + 1))));
    }
    return tags;
}

std::optional<Signature> parse_signature(std::string_view value, std::string* why) {
    auto tags = parse_tag_list(value, why);
    if (!tags || !required_tags(*tags, why)) return std::nullopt;
    Signature s;
    if (!signature_tags(*tags, s, why) || !optional_tags(*tags, s, why)) return std::nullopt;
    return s;
}

std::optional<KeyRecord> parse_key_record(std::string_view txt, std::string* why) {
    auto tags = parse_tag_list(txt, why);
    if (!tags) return std::nullopt;
    // v= is optional, but when present it comes first and says DKIM1 (RFC 6376 3.6.1).
    const std::string* v = find(*tags, "v");
    if (v && (*v != "DKIM1" || tags->front().first != "v")) return fail(why, "not a DKIM1 record"), std::nullopt;
    KeyRecord k;
    if (const std::string* t = find(*tags, "k")) k.type = *t;
    const std::string* p = find(*tags, "p");
    if (!p) return fail(why, "no p="), std::nullopt;
    auto key = decode_base64(*p);
    if (!key) return fail(why, "bad base64 in p="), std::nullopt;
    k.key = std::move(*key);
    if (const std::string* h = find(*tags, "h")) k.hashes = split(*h, ':');
    if (const std::string* s = find(*tags, "s")) {
        auto services = split(*s, ':');
        if (std::find(services.begin(), services.end(), "*") == services.end() &&
            std::find(services.begin(), services.end(), "email") == services.end())
            return fail(why, "s= excludes email"), std::nullopt;
    }
    if (const std::string* t = find(*tags, "t"))
        for (auto& flag : split(*t, ':')) {
            if (flag == "y") k.testing = true;
            if (flag == "s") k.strict = true;
        }
    return k;
}

std::optional<std::string> decode_base64(std::string_view text) {
    static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    for (char c : text) {
        if (wsp(c)) continue;
        if (c == '=') {
            if (++pad > 2) return std::nullopt;
            continue;
        }
        size_t v = kAlphabet.find(c);
        if (v == std::string_view::npos || pad) return std::nullopt;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    if (bits >= 6) return std::nullopt;  // a lone sextet is not a whole octet
    return out;
}

std::string encode_base64(std::string_view bytes) {
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        uint32_t n = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint8_t(bytes[i + 2]);
        for (int s : {18, 12, 6, 0}) out += kAlphabet[(n >> s) & 63];
    }
    if (size_t rest = bytes.size() - i) {
        uint32_t n = uint32_t(uint8_t(bytes[i])) << 16;
        if (rest == 2) n |= uint32_t(uint8_t(bytes[i + 1])) << 8;
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

}  // namespace ferry::verify::dkim
