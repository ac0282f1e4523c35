// IMAP sequence sets (RFC 9051 section 9: sequence-set, "*", "$") and their resolution against a mailbox.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace ferry::imap {

// A range as written: either end may be "*" (the largest number in use).
struct SeqRange {
    uint32_t lo = 0, hi = 0;
    bool lo_star = false, hi_star = false;
    bool operator==(const SeqRange&) const = default;
};

struct SequenceSet {
    bool saved = false;              // "$" (alone or in the list): the result saved by SEARCH RETURN (SAVE) (RFC 5182)
    std::vector<SeqRange> ranges;    // as written, in order
    bool operator==(const SequenceSet&) const = default;
};

// A resolved, sorted, merged range of numbers (lo <= hi).
struct Span {
    uint32_t lo = 0, hi = 0;
    bool operator==(const Span&) const = default;
};

// Parses "1,3:5,7:*", "$" or "1,$"; numbers are nz-number (1..4294967295). Nothing on failure.
std::optional<SequenceSet> parse_sequence_set(std::string_view s);

// Resolves against the largest number in use (EXISTS for sequence numbers, the highest UID for
// UIDs): "*" is that number, 4:2 is 2:4 (RFC 9051 section 9, seq-range), the result is sorted and
// merged. With `clamp` (UIDs) numbers past `max` are dropped and an empty mailbox gives nothing;
// without it (sequence numbers) a number past `max` makes the whole set invalid (nothing).
// "$" stands for `saved` (already resolved, in the same kind of numbers); without it a set naming
// "$" resolves to nothing.
std::optional<std::vector<Span>> resolve(const SequenceSet& set, uint32_t max, bool clamp,
                                         const std::vector<Span>* saved = nullptr);

// True when `n` lies in one of the sorted spans.
bool contains(const std::vector<Span>& spans, uint32_t n);

}  // namespace ferry::imap
