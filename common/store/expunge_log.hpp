// The UIDs a folder expunged, as compact ranges with their MODSEQ (RFC 7162 VANISHED (EARLIER)): pure, bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace ferry::store {

// UIDs lo..hi were expunged; the last of those expunges had MODSEQ `modseq`.
struct ExpungedRange {
    uint32_t lo = 0, hi = 0;
    uint64_t modseq = 0;
    bool operator==(const ExpungedRange&) const = default;
};

inline constexpr size_t kMaxExpungedRanges = 2048;  // per folder; older ranges are forgotten

using UidRanges = std::vector<std::pair<uint32_t, uint32_t>>;  // ascending, disjoint, not adjacent

// Expunges in MODSEQ order. An expunge whose MODSEQ follows the last one's directly (one batch)
// and whose UID touches the last range joins it, so a range's MODSEQ never covers an expunge a
// client could have seen apart from the rest. Past the bound the oldest range is dropped and its
// MODSEQ becomes the floor: questions about earlier MODSEQs have no precise answer any more.
class ExpungeLog {
public:
    explicit ExpungeLog(size_t max_ranges = kMaxExpungedRanges) : max_(max_ranges == 0 ? 1 : max_ranges) {}

    void add(uint32_t uid, uint64_t modseq);
    void add_range(const ExpungedRange& r);   // as a snapshot holds them, oldest first
    void set_floor(uint64_t modseq) { floor_ = std::max(floor_, modseq); }
    void clear() { ranges_.clear(); floor_ = 0; }

    // The UIDs expunged with a MODSEQ above `modseq`; nullopt when `modseq` is below the floor.
    std::optional<UidRanges> since(uint64_t modseq) const;

    const std::vector<ExpungedRange>& ranges() const { return ranges_; }
    uint64_t floor() const { return floor_; }

private:
    void bound();

    std::vector<ExpungedRange> ranges_;
    uint64_t floor_ = 0;
    size_t max_;
};

// Sorts and merges UID ranges (overlapping or adjacent ones become one).
UidRanges merge_ranges(UidRanges r);

}  // namespace ferry::store
