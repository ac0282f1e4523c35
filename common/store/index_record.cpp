// Records of the per-folder mailbox index (ferry-mailstore(5)): pure framing, encode and decode.
#include "common/store/index_record.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>

namespace ferry::store {

namespace {

constexpr std::array<uint32_t, 256> make_crc_table() {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[i] = c;
    }
    return t;
}
constexpr auto kCrcTable = make_crc_table();

// Slicing by 8 (eight bytes per step): kCrcSlices[k][b] is the CRC of byte b followed by k zero bytes.
constexpr std::array<std::array<uint32_t, 256>, 8> make_crc_slices() {
    std::array<std::array<uint32_t, 256>, 8> t{};
    t[0] = kCrcTable;
    for (size_t k = 1; k < 8; ++k)
        for (size_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ kCrcTable[t[k - 1][b] & 0xFF];
    return t;
}
constexpr auto kCrcSlices = make_crc_slices();

const char kHex[] = "0123456789abcdef";

void put_hex8(std::string& out, uint32_t v) {
    for (int shift = 28; shift >= 0; shift -= 4) out += kHex[(v >> shift) & 0xF];
}

bool parse_hex8(std::string_view s, uint32_t& v) {
    if (s.size() != 8) return false;
    v = 0;
    for (char c : s) {
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return false;
        v = (v << 4) | static_cast<uint32_t>(d);
    }
    return true;
}

template <typename T>
bool parse_num(std::string_view s, T& v) {
    if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size();
}

bool valid_flags(std::string_view f) {
    if (f.size() > kMaxFlagLetters) return false;
    for (size_t i = 0; i < f.size(); ++i) {
        char c = f[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
        if (i > 0 && f[i - 1] >= c) return false;  // sorted, no repeats
    }
    return true;
}

std::string flags_token(std::string_view f) { return f.empty() ? "-" : std::string(f); }

bool parse_flags(std::string_view t, std::string& out) {
    out = t == "-" ? std::string() : std::string(t);
    return t == "-" || (!t.empty() && valid_flags(t));
}

std::string keywords_token(const std::vector<uint32_t>& k) {
    if (k.empty()) return "-";
    std::string out;
    for (uint32_t id : k) {
        if (!out.empty()) out += ',';
        out += std::to_string(id);
    }
    return out;
}

bool parse_keywords(std::string_view t, std::vector<uint32_t>& out) {
    out.clear();
    if (t == "-") return true;
    while (true) {
        size_t comma = t.find(',');
        uint32_t id = 0;
        if (!parse_num(t.substr(0, comma), id) || id >= kMaxKeywords) return false;
        if (!out.empty() && out.back() >= id) return false;
        out.push_back(id);
        if (comma == std::string_view::npos) return true;
        t.remove_prefix(comma + 1);
    }
}

std::vector<std::string_view> split(std::string_view s) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (true) {
        size_t sp = s.find(' ', start);
        out.push_back(s.substr(start, sp == std::string_view::npos ? sp : sp - start));
        if (sp == std::string_view::npos) return out;
        start = sp + 1;
    }
}

// The payload without its framing.
std::string payload_of(const Record& r) {
    std::string p(1, static_cast<char>(r.type));
    p += ' ' + std::to_string(r.uidnext) + ' ' + std::to_string(r.highest_modseq);
    switch (r.type) {
    case RecordType::header: p += ' ' + std::to_string(r.version) + ' ' + std::to_string(r.uidvalidity); break;
    case RecordType::keyword: p += ' ' + std::to_string(r.keyword_id) + ' ' + escape_token(r.key); break;
    case RecordType::append:
        p += ' ' + std::to_string(r.uid) + ' ' + std::to_string(r.modseq) + ' ' + escape_token(r.base) + ' ' +
             flags_token(r.flags) + ' ' + keywords_token(r.keywords);
        break;
    case RecordType::flags:
        p += ' ' + std::to_string(r.uid) + ' ' + std::to_string(r.modseq) + ' ' + flags_token(r.flags) + ' ' +
             keywords_token(r.keywords);
        break;
    case RecordType::expunge: p += ' ' + std::to_string(r.uid) + ' ' + std::to_string(r.modseq); break;
    case RecordType::cache:
        p += ' ' + std::to_string(r.uid) + ' ' + escape_token(r.key) + ' ' + escape_token(r.value);
        break;
    case RecordType::vanished:
        p += ' ' + std::to_string(r.uid) + ' ' + std::to_string(r.uid_last) + ' ' + std::to_string(r.modseq);
        break;
    case RecordType::recent: p += ' ' + std::to_string(r.uid); break;
    }
    return p;
}

// The fields after "<type> <uidnext> <modseq>", checked for their type; false with `why` set.
bool parse_fields(Record& r, const std::vector<std::string_view>& f, std::string& why) {
    auto count = [&](size_t n) {
        if (f.size() == n) return true;
        why = "wrong number of fields";
        return false;
    };
    bool ok = false;
    switch (r.type) {
    case RecordType::header:
        ok = count(5) && parse_num(f[3], r.version) && parse_num(f[4], r.uidvalidity) && r.uidvalidity != 0;
        if (ok && r.version != kIndexVersion) {
            why = "unsupported index version " + std::to_string(r.version);
            return false;
        }
        break;
    case RecordType::keyword:
        ok = count(5) && parse_num(f[3], r.keyword_id) && r.keyword_id < kMaxKeywords && unescape_token(f[4], r.key) &&
             !r.key.empty();
        break;
    case RecordType::append:
        ok = count(8) && parse_num(f[3], r.uid) && parse_num(f[4], r.modseq) && unescape_token(f[5], r.base) &&
             !r.base.empty() && parse_flags(f[6], r.flags) && parse_keywords(f[7], r.keywords);
        break;
    case RecordType::flags:
        ok = count(7) && parse_num(f[3], r.uid) && parse_num(f[4], r.modseq) && parse_flags(f[5], r.flags) &&
             parse_keywords(f[6], r.keywords);
        break;
    case RecordType::expunge: ok = count(5) && parse_num(f[3], r.uid) && parse_num(f[4], r.modseq); break;
    case RecordType::cache:
        ok = count(6) && parse_num(f[3], r.uid) && unescape_token(f[4], r.key) && !r.key.empty() &&
             r.key.size() <= kMaxKeyLength && unescape_token(f[5], r.value);
        break;
    case RecordType::recent: ok = count(4) && parse_num(f[3], r.uid) && r.uid < r.uidnext; break;
    case RecordType::vanished:
        // A range of UIDs below UIDNEXT, or "0 0" (the floor: expunges up to modseq are forgotten).
        ok = count(6) && parse_num(f[3], r.uid) && parse_num(f[4], r.uid_last) && parse_num(f[5], r.modseq) &&
             r.uid <= r.uid_last && (r.uid == 0) == (r.uid_last == 0) && r.uid_last < r.uidnext &&
             r.modseq <= r.highest_modseq;
        if (!ok && why.empty()) why = "bad field";
        return ok;
    }
    if (ok && r.type != RecordType::header && r.type != RecordType::keyword && r.uid == 0) ok = false;
    if (ok && (r.type == RecordType::append || r.type == RecordType::flags || r.type == RecordType::expunge) &&
        (r.modseq == 0 || r.modseq > r.highest_modseq || r.uid >= r.uidnext))
        ok = false;
    if (!ok && why.empty()) why = "bad field";
    return ok;
}

bool parse_payload(std::string_view payload, Record& r, std::string& why) {
    auto f = split(payload);
    if (f.size() < 3 || f[0].size() != 1 || std::string_view("HKAFXCVR").find(f[0][0]) == std::string_view::npos) {
        why = "unknown record type";
        return false;
    }
    r.type = static_cast<RecordType>(f[0][0]);
    if (!parse_num(f[1], r.uidnext) || r.uidnext == 0 || !parse_num(f[2], r.highest_modseq)) {
        why = "bad counters";
        return false;
    }
    return parse_fields(r, f, why);
}

}  // namespace

uint32_t crc32(std::string_view data) {
    uint32_t c = 0xFFFFFFFFu;
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    size_t n = data.size();
    const auto& t = kCrcSlices;
    // Opening the index checksums every record: a byte at a time was most of its time.
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = c ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
        c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][p[4]] ^
            t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    }
    for (; n > 0; --n, ++p) c = kCrcTable[(c ^ *p) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

std::string escape_token(std::string_view s) {
    if (s.empty()) return "-";
    if (s == "-") return "%2D";
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c > 0x20 && c < 0x7F && c != '%') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
        }
    }
    return out;
}

namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

bool unescape_token(std::string_view t, std::string& out) {
    out.clear();
    if (t.empty()) return false;
    if (t == "-") return true;
    out.reserve(t.size());
    // Runs between escapes go over in one append: cached values (FETCH's ENVELOPE) are long.
    size_t i = 0;
    while (i < t.size()) {
        size_t j = i;
        for (; j < t.size() && t[j] != '%'; ++j) {
            auto c = static_cast<unsigned char>(t[j]);
            if (c <= 0x20 || c >= 0x7F) return false;
        }
        out.append(t.data() + i, j - i);
        if (j == t.size()) break;
        if (j + 2 >= t.size()) return false;
        int hi = hex_digit(t[j + 1]), lo = hex_digit(t[j + 2]);
        if (hi < 0 || lo < 0) return false;
        out += static_cast<char>(hi << 4 | lo);
        i = j + 3;
    }
    return true;
}

std::string encode(const Record& r) {
    std::string payload = payload_of(r);
    std::string out;
    out.reserve(kFrameHead + payload.size() + 1);
    put_hex8(out, static_cast<uint32_t>(payload.size()));
    out += ' ';
    put_hex8(out, crc32(payload));
    out += ' ';
    out += payload;
    out += '\n';
    return out;
}

std::string frame_payload(std::string_view payload) {
    std::string out;
    out.reserve(kFrameHead + payload.size() + 1);
    put_hex8(out, static_cast<uint32_t>(payload.size()));
    out += ' ';
    put_hex8(out, crc32(payload));
    out += ' ';
    out += payload;
    out += '\n';
    return out;
}

bool frame_checksum_ok(std::string_view framed) {
    uint32_t crc = 0;
    Frame f = scan_frame(framed);
    return f.status == Decoded::ok && parse_hex8(framed.substr(9, 8), crc) && crc32(f.payload) == crc;
}

Frame scan_frame(std::string_view data) {
    Frame f;
    uint32_t len = 0, crc = 0;
    if (data.size() < kFrameHead) {
        f.status = Decoded::incomplete;
        return f;
    }
    if (!parse_hex8(data.substr(0, 8), len) || data[8] != ' ' || !parse_hex8(data.substr(9, 8), crc) ||
        data[17] != ' ' || len == 0 || len > kMaxPayload)
        return f;
    if (data.size() < kFrameHead + len + 1) {
        f.status = Decoded::incomplete;
        return f;
    }
    if (data[kFrameHead + len] != '\n') return f;
    f.status = Decoded::ok;
    f.used = kFrameHead + len + 1;
    f.payload = data.substr(kFrameHead, len);
    return f;
}

DecodeResult decode(std::string_view data) {
    DecodeResult res;
    if (data.size() < kFrameHead) {
        res.status = Decoded::incomplete;
        return res;
    }
    uint32_t len = 0, crc = 0;
    if (!parse_hex8(data.substr(0, 8), len) || data[8] != ' ' || !parse_hex8(data.substr(9, 8), crc) ||
        data[17] != ' ') {
        res.why = "bad record frame";
        return res;
    }
    if (len == 0 || len > kMaxPayload) {
        res.why = "record length out of range";
        return res;
    }
    if (data.size() < kFrameHead + len + 1) {
        res.status = Decoded::incomplete;
        return res;
    }
    std::string_view payload = data.substr(kFrameHead, len);
    if (data[kFrameHead + len] != '\n' || crc32(payload) != crc) {
        res.why = "record checksum mismatch";
        return res;
    }
    if (!parse_payload(payload, res.record, res.why)) return res;
    res.status = Decoded::ok;
    res.used = kFrameHead + len + 1;
    return res;
}

}  // namespace ferry::store
