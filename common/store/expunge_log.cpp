// The UIDs a folder expunged, as compact ranges with their MODSEQ (RFC 7162 VANISHED (EARLIER)): pure, bounded.
#include "common/store/expunge_log.hpp"

#include <algorithm>

namespace ferry::store {

void ExpungeLog::add(uint32_t uid, uint64_t modseq) {
    if (!ranges_.empty()) {
        ExpungedRange& b = ranges_.back();
        bool touches = (b.hi != UINT32_MAX && uid == b.hi + 1) || (b.lo != 0 && uid + 1 == b.lo) ||
                       (uid >= b.lo && uid <= b.hi);
        if (touches && modseq == b.modseq + 1) {
            b.lo = std::min(b.lo, uid);
            b.hi = std::max(b.hi, uid);
            b.modseq = modseq;
            return;
        }
    }
    ranges_.push_back({uid, uid, modseq});
    bound();
}

void ExpungeLog::add_range(const ExpungedRange& r) {
    ranges_.push_back(r);
    bound();
}

void ExpungeLog::bound() {
    if (ranges_.size() <= max_) return;
    size_t drop = ranges_.size() - max_;
    for (size_t i = 0; i < drop; ++i) floor_ = std::max(floor_, ranges_[i].modseq);
    ranges_.erase(ranges_.begin(), ranges_.begin() + static_cast<std::ptrdiff_t>(drop));
}

std::optional<UidRanges> ExpungeLog::since(uint64_t modseq) const {
    if (modseq < floor_) return std::nullopt;
    UidRanges out;
    for (const auto& r : ranges_)
        if (r.modseq > modseq) out.emplace_back(r.lo, r.hi);
    return merge_ranges(std::move(out));
}

UidRanges merge_ranges(UidRanges r) {
    std::sort(r.begin(), r.end());
    UidRanges out;
    for (const auto& [lo, hi] : r) {
        if (!out.empty() && (out.back().second == UINT32_MAX || lo <= out.back().second + 1)) {
            out.back().second = std::max(out.back().second, hi);
        } else {
            out.emplace_back(lo, hi);
        }
    }
    return out;
}

}  // namespace ferry::store
