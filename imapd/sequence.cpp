// IMAP sequence sets: parsing and resolution (pure).
#include "imapd/sequence.hpp"

#include <algorithm>

namespace ferry::imap {

namespace {

// nz-number or "*"; advances `s`.
bool parse_num(std::string_view& s, uint32_t& n, bool& star) {
    if (!s.empty() && s[0] == '*') {
        star = true;
        n = 0;
        s.remove_prefix(1);
        return true;
    }
    star = false;
    if (s.empty() || s[0] < '1' || s[0] > '9') return false;
    uint64_t v = 0;
    while (!s.empty() && s[0] >= '0' && s[0] <= '9') {
        v = v * 10 + uint64_t(s[0] - '0');
        if (v > 0xffffffffu) return false;
        s.remove_prefix(1);
    }
    n = uint32_t(v);
    return true;
}

}  // namespace

std::optional<SequenceSet> parse_sequence_set(std::string_view s) {
    SequenceSet set;
    for (;;) {
        if (!s.empty() && s[0] == '$') {
            set.saved = true;
            s.remove_prefix(1);
            if (s.empty()) return set;
            if (s[0] != ',') return std::nullopt;
            s.remove_prefix(1);
            continue;
        }
        SeqRange r;
        if (!parse_num(s, r.lo, r.lo_star)) return std::nullopt;
        r.hi = r.lo;
        r.hi_star = r.lo_star;
        if (!s.empty() && s[0] == ':') {
            s.remove_prefix(1);
            if (!parse_num(s, r.hi, r.hi_star)) return std::nullopt;
        }
        set.ranges.push_back(r);
        if (s.empty()) return set;
        if (s[0] != ',') return std::nullopt;
        s.remove_prefix(1);
    }
}

std::optional<std::vector<Span>> resolve(const SequenceSet& set, uint32_t max, bool clamp,
                                         const std::vector<Span>* saved) {
    if (set.saved && !saved) return std::nullopt;
    std::vector<Span> spans;
    if (set.saved) spans = *saved;
    for (const SeqRange& r : set.ranges) {
        uint32_t a = r.lo_star ? max : r.lo;
        uint32_t b = r.hi_star ? max : r.hi;
        if (a > b) std::swap(a, b);
        if (clamp) {
            // RFC 9051 section 6.4.8: 559:* includes the last UID even when 559 is past it.
            if (max == 0) continue;
            if (a > max) {
                if (!(r.lo_star || r.hi_star)) continue;
                a = max;
            }
            b = std::min(b, max);
        } else if (a == 0 || b > max) {
            return std::nullopt;
        }
        spans.push_back(Span{a, b});
    }
    std::sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) { return x.lo < y.lo; });
    std::vector<Span> merged;
    for (const Span& sp : spans) {
        if (!merged.empty() && uint64_t(sp.lo) <= uint64_t(merged.back().hi) + 1)
            merged.back().hi = std::max(merged.back().hi, sp.hi);
        else
            merged.push_back(sp);
    }
    return merged;
}

bool contains(const std::vector<Span>& spans, uint32_t n) {
    auto it = std::upper_bound(spans.begin(), spans.end(), n, [](uint32_t v, const Span& s) { return v < s.lo; });
    return it != spans.begin() && std::prev(it)->hi >= n;
}

}  // namespace ferry::imap
