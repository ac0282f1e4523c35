// Comparators, match types and relational tests of Sieve, with a work budget against costly patterns.
#include "mda/sieve/match.hpp"

#include <algorithm>

#include "mda/sieve/strings.hpp"

namespace ferry::sieve {

namespace {

char fold(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool same(Comparator c, char a, char b) { return c == Comparator::octet ? a == b : fold(a) == fold(b); }

// RFC 4790 9.1: the leading digits, leading zeros dropped; none is positive infinity (empty string here).
std::string_view numeric(std::string_view s, bool& infinite) {
    size_t n = 0;
    while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
    infinite = n == 0;
    std::string_view d = s.substr(0, n);
    while (d.size() > 1 && d[0] == '0') d.remove_prefix(1);
    return d;
}

struct Piece {
    enum Kind { literal, one, star } kind;
    char c = 0;
};

std::vector<Piece> pieces(std::string_view pattern) {
    std::vector<Piece> out;
    for (size_t i = 0; i < pattern.size(); ++i) {
        char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) out.push_back({Piece::literal, pattern[++i]});
        else if (c == '*') out.push_back({Piece::star, 0});
        else if (c == '?') out.push_back({Piece::one, 0});
        else out.push_back({Piece::literal, c});
    }
    return out;
}

class Glob {
public:
    Glob(Comparator c, std::string_view v, std::vector<Piece> p, Budget& b) : c_(c), v_(v), p_(std::move(p)), b_(b) {}

    // Yes or no without captures: the classic two-pointer search, O(value x pattern) at worst.
    bool matches() {
        size_t pi = 0, vi = 0, star_p = SIZE_MAX, star_v = 0;
        while (vi < v_.size()) {
            if (!b_.spend(1)) return false;
            if (pi < p_.size() && p_[pi].kind == Piece::star) {
                star_p = pi++;
                star_v = vi;
            } else if (pi < p_.size() && step(pi, vi)) {
                ++pi;
            } else if (star_p != SIZE_MAX) {
                pi = star_p + 1;
                vi = star_v = star_v + one_len(star_v);
            } else {
                return false;
            }
        }
        while (pi < p_.size() && p_[pi].kind == Piece::star) ++pi;
        return pi == p_.size();
    }

    // With captures: backtracking, each wildcard as short as it can be, leftmost first.
    bool capture(std::vector<std::string>& caps) {
        caps.clear();
        caps.emplace_back(v_);
        for (const auto& p : p_)
            if (p.kind != Piece::literal) caps.emplace_back();
        return rec(0, 0, caps, 1);
    }

private:
    size_t one_len(size_t vi) const {
        if (c_ == Comparator::octet) return 1;
        return std::min(utf8_length(static_cast<unsigned char>(v_[vi])), v_.size() - vi);
    }
    // Advances vi past one non-star piece; false when it does not match there.
    bool step(size_t pi, size_t& vi) const {
        if (vi >= v_.size()) return false;
        if (p_[pi].kind == Piece::one) {
            vi += one_len(vi);
            return true;
        }
        if (!same(c_, p_[pi].c, v_[vi])) return false;
        ++vi;
        return true;
    }
    bool rec(size_t pi, size_t vi, std::vector<std::string>& caps, size_t cap) {
        for (; pi < p_.size(); ++pi) {
            if (!b_.spend(1)) return false;
            if (p_[pi].kind == Piece::star) {
                for (size_t end = vi; end <= v_.size(); end += end < v_.size() ? one_len(end) : 1) {
                    caps[cap] = std::string(v_.substr(vi, end - vi));
                    if (rec(pi + 1, end, caps, cap + 1)) return true;
                    if (b_.exceeded()) return false;
                }
                return false;
            }
            size_t before = vi;
            if (!step(pi, vi)) return false;
            if (p_[pi].kind == Piece::one) caps[cap++] = std::string(v_.substr(before, vi - before));
        }
        return vi == v_.size();
    }

    Comparator c_;
    std::string_view v_;
    std::vector<Piece> p_;
    Budget& b_;
};

// Captures are only worth their backtracking for patterns a person writes.
constexpr size_t kMaxCaptureStars = 32;

bool one_match(const Node& t, std::string_view value, std::string_view key, std::vector<std::string>* caps,
               Budget& b) {
    if (!b.spend(1 + value.size() / 64)) return false;
    switch (t.match) {
        case MatchType::is: return compare(t.comparator, value, key) == 0;
        case MatchType::contains: return contains(t.comparator, value, key);
        case MatchType::matches: return glob(t.comparator, value, key, caps, b);
        case MatchType::value: return relation_holds(t.relation, compare(t.comparator, value, key));
        case MatchType::count: return false;
    }
    return false;
}

}  // namespace

int compare(Comparator c, std::string_view a, std::string_view b) {
    if (c == Comparator::ascii_numeric) {
        bool ia = false, ib = false;
        std::string_view na = numeric(a, ia), nb = numeric(b, ib);
        if (ia || ib) return ia == ib ? 0 : ia ? 1 : -1;
        if (na.size() != nb.size()) return na.size() < nb.size() ? -1 : 1;
        return na.compare(nb) < 0 ? -1 : na.compare(nb) > 0 ? 1 : 0;
    }
    size_t n = std::min(a.size(), b.size());
    for (size_t i = 0; i < n; ++i) {
        unsigned char x = static_cast<unsigned char>(c == Comparator::octet ? a[i] : fold(a[i]));
        unsigned char y = static_cast<unsigned char>(c == Comparator::octet ? b[i] : fold(b[i]));
        if (x != y) return x < y ? -1 : 1;
    }
    return a.size() == b.size() ? 0 : a.size() < b.size() ? -1 : 1;
}

bool contains(Comparator c, std::string_view hay, std::string_view needle) {
    if (c == Comparator::octet) return hay.find(needle) != std::string_view::npos;
    auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                          [](char x, char y) { return fold(x) == fold(y); });
    return it != hay.end() || needle.empty();
}

bool glob(Comparator c, std::string_view value, std::string_view pattern, std::vector<std::string>* captures,
          Budget& budget) {
    Glob g(c, value, pieces(pattern), budget);
    if (!g.matches()) return false;
    if (!captures) return true;
    size_t stars = static_cast<size_t>(std::count(pattern.begin(), pattern.end(), '*'));
    if (stars > kMaxCaptureStars) {
        captures->assign(1, std::string(value));
        return true;
    }
    std::vector<std::string> caps;
    if (g.capture(caps)) *captures = std::move(caps);
    return true;
}

bool relation_holds(Relation r, int cmp) {
    switch (r) {
        case Relation::gt: return cmp > 0;
        case Relation::ge: return cmp >= 0;
        case Relation::lt: return cmp < 0;
        case Relation::le: return cmp <= 0;
        case Relation::eq: return cmp == 0;
        case Relation::ne: return cmp != 0;
    }
    return false;
}

bool match_any(const Node& t, const std::vector<std::string>& values, const std::vector<std::string>& keys,
               std::vector<std::string>* captures, Budget& b) {
    if (t.match == MatchType::count) {
        std::string n = std::to_string(values.size());
        for (const auto& k : keys)
            if (b.spend(1) && relation_holds(t.relation, compare(t.comparator, n, k))) return true;
        return false;
    }
    std::vector<std::string> caps;
    for (const auto& v : values)
        for (const auto& k : keys) {
            if (b.exceeded()) return false;
            if (one_match(t, v, k, t.match == MatchType::matches ? &caps : nullptr, b)) {
                if (captures && t.match == MatchType::matches) *captures = std::move(caps);
                return true;
            }
        }
    return false;
}

}  // namespace ferry::sieve
