// Decoding what MIME encodes: quoted-printable, base64, charsets (iconv), RFC 2047 words, case folding.
#include "common/mail/mime_decode.hpp"

#include <iconv.h>
#include <locale.h>
#include <wctype.h>

#include <cerrno>
#include <cstdint>

#include "common/mail/mime_text.hpp"

namespace ferry::mail {

namespace {

constexpr char32_t kReplacement = 0xFFFD;
constexpr int kInvalid = -1, kIncomplete = -2;

// Decodes one UTF-8 sequence at s[i]: the code point (i moves past it), kInvalid (i moves one
// octet) or kIncomplete (the sequence runs past the end; i stays).
int32_t next_code_point(std::string_view s, size_t& i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) { ++i; return c; }
    int n = c >= 0xF0 && c <= 0xF4 ? 3 : c >= 0xE0 ? (c <= 0xEF ? 2 : 0) : c >= 0xC2 ? 1 : 0;
    if (n == 0) { ++i; return kInvalid; }
    int32_t cp = c & (0x3F >> n);
    for (int k = 1; k <= n; ++k) {
        if (i + static_cast<size_t>(k) >= s.size()) return kIncomplete;
        auto d = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
        if ((d & 0xC0) != 0x80) { ++i; return kInvalid; }
        cp = (cp << 6) | (d & 0x3F);
    }
    bool overlong = (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) { ++i; return kInvalid; }
    i += static_cast<size_t>(n) + 1;
    return cp;
}


char32_t fold(char32_t cp) {
    static locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp - 'A' + 'a' : cp;
    if (!utf8) return cp;
    return static_cast<char32_t>(towlower_l(static_cast<wint_t>(cp), utf8));
}

// The charset name iconv knows it by: us-ascii and the unnamed are read as UTF-8.
std::string iconv_name(std::string_view charset) {
    std::string cs = ascii_lower(charset);
    if (cs.empty() || cs == "us-ascii" || cs == "ascii" || cs == "utf8") return "UTF-8";
    return cs;
}

}  // namespace

void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

TransferEncoding transfer_encoding_of(std::string_view cte) {
    std::string e = ascii_lower(cte);
    if (e.empty() || e == "7bit" || e == "8bit" || e == "binary") return TransferEncoding::identity;
    if (e == "quoted-printable") return TransferEncoding::quoted_printable;
    if (e == "base64") return TransferEncoding::base64;
    return TransferEncoding::unknown;
}

void QpDecoder::feed(std::string_view in, std::string& out) {
    constexpr size_t kMaxPending = 1024;  // a longer run of white space is written as it is
    for (size_t i = 0; i < in.size();) {
        char c = in[i];
        if (pending_.empty()) {
            if (c == '=' || is_wsp(c)) pending_ += c;
            else out += c;
            ++i;
            continue;
        }
        bool eq = pending_[0] == '=';
        if (eq && pending_.size() == 1 && hex_digit(c) >= 0) {
            pending_ += c;
            ++i;
        } else if (eq && pending_.size() == 2 && hex_digit(pending_[1]) >= 0) {
            if (hex_digit(c) >= 0) {
                out += static_cast<char>(hex_digit(pending_[1]) * 16 + hex_digit(c));
                ++i;
            } else {
                out += pending_;  // "=X" without a second digit stays
            }
            pending_.clear();
        } else if (c == '\n') {
            if (!eq) out += pending_.back() == '\r' ? "\r\n" : "\n";  // trailing white space goes
            pending_.clear();  // after "=": a soft line break
            ++i;
        } else if ((is_wsp(c) || c == '\r') && pending_.back() != '\r' && pending_.size() < kMaxPending) {
            pending_ += c;
            ++i;
        } else {
            out += pending_;
            pending_.clear();
        }
    }
}

void QpDecoder::finish(std::string& out) {
    if (pending_.size() == 2 && pending_[0] == '=' && hex_digit(pending_[1]) >= 0) out += pending_;
    pending_.clear();  // trailing white space or a last soft line break
}

void Base64Decoder::feed(std::string_view in, std::string& out) {
    for (char ch : in) {
        int v;
        if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
        else if (ch == '+') v = 62;
        else if (ch == '/') v = 63;
        else continue;
        bits_ = (bits_ << 6) | static_cast<uint32_t>(v);
        if (++count_ < 4) continue;
        out += static_cast<char>((bits_ >> 16) & 0xFF);
        out += static_cast<char>((bits_ >> 8) & 0xFF);
        out += static_cast<char>(bits_ & 0xFF);
        bits_ = 0;
        count_ = 0;
    }
}

void Base64Decoder::finish(std::string& out) {
    if (count_ == 2) out += static_cast<char>((bits_ >> 4) & 0xFF);
    if (count_ == 3) {
        out += static_cast<char>((bits_ >> 10) & 0xFF);
        out += static_cast<char>((bits_ >> 2) & 0xFF);
    }
    bits_ = 0;
    count_ = 0;
}

void TransferDecoder::feed(std::string_view in, std::string& out) {
    if (encoding_ == TransferEncoding::quoted_printable) qp_.feed(in, out);
    else if (encoding_ == TransferEncoding::base64) b64_.feed(in, out);
    else out += in;
}

void TransferDecoder::finish(std::string& out) {
    if (encoding_ == TransferEncoding::quoted_printable) qp_.finish(out);
    else if (encoding_ == TransferEncoding::base64) b64_.finish(out);
}

std::string decode_quoted_printable(std::string_view in) {
    std::string out;
    QpDecoder d;
    d.feed(in, out);
    d.finish(out);
    return out;
}

std::string decode_base64(std::string_view in) {
    std::string out;
    Base64Decoder d;
    d.feed(in, out);
    d.finish(out);
    return out;
}

void CharsetConverter::Close::operator()(void* cd) const { iconv_close(static_cast<iconv_t>(cd)); }

CharsetConverter::CharsetConverter(std::string_view charset) {
    std::string name = iconv_name(charset);
    iconv_t cd = iconv_open("UTF-8", name.c_str());
    known_ = cd != reinterpret_cast<iconv_t>(-1);
    if (!known_) cd = iconv_open("UTF-8", "UTF-8");
    if (cd != reinterpret_cast<iconv_t>(-1)) cd_.reset(cd);
}

void CharsetConverter::feed(std::string_view in, std::string& out) {
    if (!cd_) {
        out += sanitize_utf8(in);
        return;
    }
    std::string data = pending_;
    data += in;
    pending_.clear();
    char* src = data.data();
    size_t left = data.size();
    char buf[4096];
    while (left > 0) {
        char* dst = buf;
        size_t room = sizeof buf;
        size_t rc = iconv(static_cast<iconv_t>(cd_.get()), &src, &left, &dst, &room);
        out.append(buf, static_cast<size_t>(dst - buf));
        if (rc != static_cast<size_t>(-1)) continue;
        if (errno == E2BIG) continue;
        if (errno == EINVAL && left < 16) {  // an incomplete sequence: wait for the rest
            pending_.assign(src, left);
            return;
        }
        append_utf8(out, kReplacement);  // EILSEQ: skip one octet
        ++src;
        --left;
    }
}

void CharsetConverter::finish(std::string& out) {
    if (!pending_.empty()) append_utf8(out, kReplacement);
    pending_.clear();
    if (cd_) iconv(static_cast<iconv_t>(cd_.get()), nullptr, nullptr, nullptr, nullptr);
}

std::optional<std::string> to_utf8(std::string_view charset, std::string_view bytes) {
    CharsetConverter conv(charset);
    if (!conv.known()) return std::nullopt;
    std::string out;
    conv.feed(bytes, out);
    conv.finish(out);
    return out;
}

std::string sanitize_utf8(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (size_t i = 0; i < bytes.size();) {
        size_t start = i;
        int32_t cp = next_code_point(bytes, i);
        if (cp >= 0) {
            out.append(bytes.substr(start, i - start));
        } else {
            append_utf8(out, kReplacement);
            if (cp == kIncomplete) i = bytes.size();
        }
    }
    return out;
}

namespace {

// An RFC 2047 encoded word at s[i]: its charset (language suffix removed) and decoded octets.
struct EncodedWord {
    std::string charset, bytes;
    size_t end = 0;
};

std::optional<EncodedWord> encoded_word(std::string_view s, size_t i) {
    if (s.substr(i, 2) != "=?") return std::nullopt;
    size_t q1 = s.find('?', i + 2);
    if (q1 == std::string_view::npos || q1 + 3 >= s.size() || s[q1 + 2] != '?') return std::nullopt;
    size_t close = s.find("?=", q1 + 3);
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view cs = s.substr(i + 2, q1 - i - 2), text = s.substr(q1 + 3, close - q1 - 3);
    if (cs.empty() || cs.find_first_of(" \t\r\n") != std::string_view::npos ||
        text.find_first_of(" \t\r\n") != std::string_view::npos)
        return std::nullopt;
    EncodedWord w;
    w.charset = std::string(cs.substr(0, cs.find('*')));
    char enc = s[q1 + 1];
    if (enc == 'B' || enc == 'b') {
        w.bytes = decode_base64(text);
    } else if (enc == 'Q' || enc == 'q') {
        for (size_t k = 0; k < text.size(); ++k) {
            if (text[k] == '_') w.bytes += ' ';
            else if (text[k] == '=' && k + 2 < text.size() && hex_digit(text[k + 1]) >= 0 && hex_digit(text[k + 2]) >= 0) {
                w.bytes += static_cast<char>(hex_digit(text[k + 1]) * 16 + hex_digit(text[k + 2]));
                k += 2;
            } else w.bytes += text[k];
        }
    } else {
        return std::nullopt;
    }
    if (!CharsetConverter(w.charset).known()) return std::nullopt;
    w.end = close + 2;
    return w;
}

}  // namespace

std::string decode_header_value(std::string_view s) {
    std::string out, plain, gap, word_bytes, word_charset;
    bool last_word = false;
    auto flush_word = [&] {
        if (word_bytes.empty()) return;
        out += to_utf8(word_charset, word_bytes).value_or(sanitize_utf8(word_bytes));
        word_bytes.clear();
    };
    for (size_t i = 0; i < s.size();) {
        if (auto w = encoded_word(s, i)) {
            out += sanitize_utf8(plain);
            plain.clear();
            gap.clear();  // white space between two words goes
            if (ascii_lower(w->charset) != ascii_lower(word_charset)) flush_word();
            word_charset = w->charset;
            word_bytes += w->bytes;  // adjacent words of one charset may split a character
            last_word = true;
            i = w->end;
            continue;
        }
        char c = s[i++];
        if (last_word && (is_wsp(c) || c == '\r' || c == '\n')) {
            gap += c;
            continue;
        }
        if (last_word) {
            flush_word();
            plain += gap;
            gap.clear();
            last_word = false;
        }
        plain += c;
    }
    flush_word();
    plain += gap;
    out += sanitize_utf8(plain);
    return out;
}

std::string utf8_fold(std::string_view utf8) {
    std::string out;
    for (size_t i = 0; i < utf8.size();) {
        int32_t cp = next_code_point(utf8, i);
        append_utf8(out, cp < 0 ? kReplacement : fold(static_cast<char32_t>(cp)));
        if (cp == kIncomplete) break;
    }
    return out;
}

namespace {

// Appends the folded code points of `s` to `out`; an incomplete last sequence is returned.
std::string fold_into(std::string_view s, std::u32string& out) {
    for (size_t i = 0; i < s.size();) {
        int32_t cp = next_code_point(s, i);
        if (cp == kIncomplete) return std::string(s.substr(i));
        out += cp < 0 ? kReplacement : fold(static_cast<char32_t>(cp));
    }
    return {};
}

}  // namespace

Utf8Search::Utf8Search(std::string_view needle) {
    fold_into(needle, needle_);
    found_ = needle_.empty();
}

void Utf8Search::feed(std::string_view utf8) {
    if (found_) return;
    std::string data = pending_;
    data += utf8;
    pending_ = fold_into(data, window_);
    if (window_.find(needle_) != std::u32string::npos) {
        found_ = true;
        window_.clear();
        return;
    }
    if (window_.size() >= needle_.size()) window_.erase(0, window_.size() - (needle_.size() - 1));
}

bool contains_ci(std::string_view haystack, std::string_view needle) {
    Utf8Search s(needle);
    s.feed(haystack);
    return s.found();
}

void PartTextDecoder::feed(std::string_view raw, std::string& utf8) {
    transfer_.feed(raw, buf_);
    charset_.feed(buf_, utf8);
    buf_.clear();
}

void PartTextDecoder::finish(std::string& utf8) {
    transfer_.finish(buf_);
    charset_.feed(buf_, utf8);
    buf_.clear();
    charset_.finish(utf8);
}

}  // namespace ferry::mail
