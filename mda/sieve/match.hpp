// Comparators (RFC 4790: i;octet, i;ascii-casemap, i;ascii-numeric), match types (RFC 5228 2.7) and relational tests (RFC 5231).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mda/sieve/script.hpp"

namespace ferry::sieve {

// Work a message may cost: every comparison and every step of a :matches search spends from it.
struct Budget {
    uint64_t max = 0, used = 0;
    bool spend(uint64_t n) {
        used += n;
        return used <= max;
    }
    bool exceeded() const { return used > max; }
};

// <0, 0, >0 as a collation orders a and b (i;ascii-numeric: a missing number is positive infinity).
int compare(Comparator c, std::string_view a, std::string_view b);
bool contains(Comparator c, std::string_view haystack, std::string_view needle);
// "*" any run, "?" one character (one octet for i;octet), "\" quotes the next; captures get
// what each wildcard matched (RFC 5229 3.2: the leftmost wildcard as short as it can be).
bool glob(Comparator c, std::string_view value, std::string_view pattern, std::vector<std::string>* captures,
          Budget& budget);
bool relation_holds(Relation r, int cmp);

// The match of a test: any value against any key. :count compares the number of values. On a
// :matches success, `captures` holds ${0} (the value) and one entry per wildcard.
bool match_any(const Node& test, const std::vector<std::string>& values, const std::vector<std::string>& keys,
               std::vector<std::string>* captures, Budget& budget);

}  // namespace ferry::sieve
