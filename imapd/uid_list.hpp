// The UIDs a session knows, as runs of consecutive UIDs: sequence number <-> UID for a big folder in a few bytes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <vector>

namespace ferry::imap {

// Ascending UIDs; position i is sequence number i + 1. A folder whose UIDs have few holes (the
// usual case) costs one run, where a vector would cost 4 bytes a message in every session on it.
class UidList {
    struct Run {
        uint32_t lo, hi;
        size_t before;  // UIDs in the runs before this one
    };

public:
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    uint32_t back() const { return runs_.back().hi; }
    void clear() {
        runs_.clear();
        size_ = 0;
    }
    // `uid` must be above back().
    void push_back(uint32_t uid) {
        if (!runs_.empty() && runs_.back().hi + 1 == uid) ++runs_.back().hi;
        else runs_.push_back(Run{uid, uid, size_});
        ++size_;
    }
    // The UID at position i (< size()).
    uint32_t operator[](size_t i) const {
        auto it = std::upper_bound(runs_.begin(), runs_.end(), i, [](size_t v, const Run& r) { return v < r.before; });
        --it;
        return it->lo + static_cast<uint32_t>(i - it->before);
    }
    // How many UIDs are below `uid` (std::lower_bound's position).
    size_t lower_bound(uint32_t uid) const {
        auto it = std::lower_bound(runs_.begin(), runs_.end(), uid, [](const Run& r, uint32_t u) { return r.hi < u; });
        if (it == runs_.end()) return size_;
        return it->before + (uid > it->lo ? uid - it->lo : 0);
    }
    // The position of `uid`, when the list holds it.
    std::optional<size_t> find(uint32_t uid) const {
        size_t i = lower_bound(uid);
        if (i < size_ && (*this)[i] == uid) return i;
        return std::nullopt;
    }
    void erase_at(size_t i) {
        auto it = std::upper_bound(runs_.begin(), runs_.end(), i, [](size_t v, const Run& r) { return v < r.before; }) - 1;
        uint32_t uid = it->lo + static_cast<uint32_t>(i - it->before);
        if (it->lo == it->hi) {
            it = runs_.erase(it);
        } else if (uid == it->lo) {
            ++it->lo;
            ++it;
        } else if (uid == it->hi) {
            --it->hi;
            ++it;
        } else {
            Run tail{uid + 1, it->hi, 0};
            it->hi = uid - 1;
            tail.before = it->before + (it->hi - it->lo + 1);
            it = runs_.insert(it + 1, tail) + 1;
        }
        for (; it != runs_.end(); ++it) --it->before;
        --size_;
    }

    class const_iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = uint32_t;
        using difference_type = std::ptrdiff_t;
        using pointer = const uint32_t*;
        using reference = uint32_t;
        const_iterator() = default;
        uint32_t operator*() const { return uid_; }
        const_iterator& operator++() {
            if (uid_ < run_->hi) {
                ++uid_;
            } else if (++run_ != end_) {
                uid_ = run_->lo;
            }
            return *this;
        }
        const_iterator operator++(int) {
            auto old = *this;
            ++*this;
            return old;
        }
        bool operator==(const const_iterator& o) const { return run_ == o.run_ && (run_ == end_ || uid_ == o.uid_); }

    private:
        friend class UidList;
        using RunIt = std::vector<UidList::Run>::const_iterator;
        const_iterator(RunIt run, RunIt end) : run_(run), end_(end), uid_(run != end ? run->lo : 0) {}
        RunIt run_{}, end_{};
        uint32_t uid_ = 0;
    };
    const_iterator begin() const { return const_iterator(runs_.begin(), runs_.end()); }
    const_iterator end() const { return const_iterator(runs_.end(), runs_.end()); }
    // Runs held (for tests: memory is about 16 bytes a run).
    size_t runs() const { return runs_.size(); }

private:
    std::vector<Run> runs_;
    size_t size_ = 0;
};

}  // namespace ferry::imap
