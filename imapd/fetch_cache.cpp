// The MessageInfo cache value of FETCH and SEARCH, part lookup for BINARY, chunked CRLF conversion and partial windows.
#include "imapd/fetch_cache.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/mail/imap_body.hpp"

namespace ferry::imap {

namespace {

constexpr size_t kMaxLayoutDepth = 64;      // above MimeLimits::max_depth
constexpr size_t kMaxLayoutParts = 20000;   // above MimeLimits::max_parts

void put_field(std::string& out, std::string_view s) {
    out += std::to_string(s.size());
    out += ':';
    out += s;
}

bool take_field(std::string_view& in, std::string_view& field) {
    size_t colon = in.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 20) return false;
    uint64_t n = 0;
    auto [p, ec] = std::from_chars(in.data(), in.data() + colon, n);
    if (ec != std::errc() || p != in.data() + colon || n > in.size() - colon - 1) return false;
    field = in.substr(colon + 1, n);
    in.remove_prefix(colon + 1 + n);
    return true;
}

template <typename T>
bool to_number(std::string_view s, T& v) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

// A type, subtype or encoding as one token: anything with white space or control octets is "x".
std::string token(std::string_view s) {
    bool ok = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return static_cast<unsigned char>(c) > ' ' && static_cast<unsigned char>(c) < 0x7f;
    });
    return ok ? std::string(s) : std::string("x");
}

void put_range(std::string& out, const mail::MimeRange& r) {
    for (uint64_t v : {r.offset, r.size, r.crlf_offset, r.crlf_size, r.lines}) out += ' ' + std::to_string(v);
}

void put_layout(std::string& out, const mail::MimePart& p) {
    if (!out.empty()) out += ' ';
    out += token(p.type) + ' ' + token(p.subtype) + ' ' + token(p.transfer_encoding());
    put_range(out, p.header);
    put_range(out, p.body);
    out += ' ' + std::to_string(p.children.size());
    for (const auto& c : p.children) put_layout(out, c);
}

class Tokens {
public:
    explicit Tokens(std::string_view s) : s_(s) {}
    bool next(std::string_view& t) {
        if (s_.empty()) return false;
        size_t sp = s_.find(' ');
        t = s_.substr(0, sp);
        s_.remove_prefix(sp == std::string_view::npos ? s_.size() : sp + 1);
        return !t.empty();
    }
    template <typename T>
    bool number(T& v) {
        std::string_view t;
        return next(t) && to_number(t, v);
    }
    bool range(mail::MimeRange& r) {
        return number(r.offset) && number(r.size) && number(r.crlf_offset) && number(r.crlf_size) && number(r.lines);
    }
    bool empty() const { return s_.empty(); }

private:
    std::string_view s_;
};

bool take_layout(Tokens& t, mail::MimePart& p, size_t depth, size_t& parts) {
    std::string_view type, subtype, encoding;
    size_t children = 0;
    if (depth > kMaxLayoutDepth || ++parts > kMaxLayoutParts) return false;
    if (!t.next(type) || !t.next(subtype) || !t.next(encoding) || !t.range(p.header) || !t.range(p.body) ||
        !t.number(children) || children > kMaxLayoutParts)
        return false;
    p.type = type;
    p.subtype = subtype;
    p.encoding = std::string(encoding);
    p.depth = depth;
    p.children.resize(children);
    for (auto& c : p.children)
        if (!take_layout(t, c, depth + 1, parts)) return false;
    return true;
}

}  // namespace

MessageInfo info_of(const mail::MimePart& tree, int64_t internal_date, uint64_t size) {
    MessageInfo info;
    info.internal_date = internal_date;
    info.size = size;
    info.crlf_size = tree.header.crlf_size + tree.body.crlf_size;
    info.envelope = mail::imap_envelope(tree);
    info.bodystructure = mail::imap_bodystructure(tree);
    info.body = mail::imap_body(tree);
    std::string layout;
    put_layout(layout, tree);
    Tokens t(layout);
    size_t parts = 0;
    take_layout(t, info.layout, 0, parts);  // the skeleton, exactly as a reader of the cache gets it
    return info;
}

std::string encode_info(const MessageInfo& info) {
    std::string out, layout;
    put_field(out, std::to_string(info.internal_date));
    put_field(out, std::to_string(info.size));
    put_field(out, std::to_string(info.crlf_size));
    put_field(out, info.envelope);
    put_field(out, info.bodystructure);
    put_field(out, info.body);
    put_layout(layout, info.layout);
    put_field(out, layout);
    return out;
}

std::optional<MessageInfo> decode_info(std::string_view value) {
    std::string_view date, size, crlf_size, envelope, bodystructure, body, layout;
    if (!take_field(value, date) || !take_field(value, size) || !take_field(value, crlf_size) ||
        !take_field(value, envelope) || !take_field(value, bodystructure) || !take_field(value, body) ||
        !take_field(value, layout) || !value.empty())
        return std::nullopt;
    MessageInfo info;
    if (!to_number(date, info.internal_date) || !to_number(size, info.size) || !to_number(crlf_size, info.crlf_size))
        return std::nullopt;
    info.envelope = envelope;
    info.bodystructure = bodystructure;
    info.body = body;
    Tokens t(layout);
    size_t parts = 0;
    if (!take_layout(t, info.layout, 0, parts) || !t.empty()) return std::nullopt;
    return info;
}

void CrlfConverter::feed(std::string_view in, std::string& out) {
    // In slices, so that the room made for the worst case is still in the L1 cache when written.
    constexpr size_t kSlice = 8192;
    while (!in.empty()) {
        std::string_view s = in.substr(0, kSlice);
        size_t before = out.size();
        out.resize(before + 2 * s.size());
        out.resize(before + convert(s, out.data() + before));
        in.remove_prefix(s.size());
    }
}

size_t CrlfConverter::convert(std::string_view in, char* out) {
    const char* p = in.data();
    const char* end = p + in.size();
    char* o = out;
    bool cr = after_cr_;  // the octet before p is a CR
#if defined(__SSE2__)
    // 32 octets at a time, always: their LFs and CRs as bit masks give the LFs that need a CR, and
    // the block is stored once and again after each CR put in, so no load waits on where the
    // previous line ended. Loads stay inside the input (p + 63 < end); stores inside the room:
    // o - out <= 2 * (p - in) <= 2 * size - 128, and one block writes at most 96 octets from o.
    const __m128i lf_octets = _mm_set1_epi8('\n');
    const __m128i cr_octets = _mm_set1_epi8('\r');
    auto mask = [](__m128i a, __m128i b, __m128i c) {
        return static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(a, c))) |
               static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(b, c))) << 16;
    };
    while (end - p >= 64) {
        __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o), a);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 16), b);
        uint32_t crs = mask(a, b, cr_octets);
        uint32_t need = mask(a, b, lf_octets) & ~((crs << 1) | (cr ? 1u : 0u));
        cr = crs >> 31;
        const char* s = p;  // the block's octets before s are in place
        while (need) {
            const char* nl = p + __builtin_ctz(need);
            need &= need - 1;
            o += nl - s;
            *o++ = '\r';
            s = nl;
            _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 16), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 16)));
        }
        o += p + 32 - s;
        p += 32;
    }
#endif
    // The rest (all of it without SSE2): memchr finds the line ends, the text between them is copied whole.
    while (p < end) {
        const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
        const char* stop = nl ? nl : end;
        size_t n = static_cast<size_t>(stop - p);
        std::memcpy(o, p, n);
        o += n;
        if (n > 0) cr = stop[-1] == '\r';
        if (!nl) break;
        if (!cr) *o++ = '\r';
        *o++ = '\n';
        p = nl + 1;
        cr = false;
    }
    after_cr_ = cr;
    return static_cast<size_t>(o - out);
}

std::string_view PartialWindow::take(std::string_view chunk) {
    uint64_t lo = pos_, hi = pos_ + chunk.size();
    pos_ = hi;
    uint64_t end = start_ + count_;
    if (hi <= start_ || lo >= end) return {};
    uint64_t a = std::max(lo, start_), b = std::min(hi, end);
    return chunk.substr(a - lo, b - a);
}

}  // namespace ferry::imap
