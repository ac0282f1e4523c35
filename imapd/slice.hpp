// Slice: one turn's share of the event loop for a long command, bounded in work done and in time.
#pragma once

#include <chrono>
#include <cstdint>

namespace ferry::imap {

// A FETCH or SEARCH of a whole mailbox runs in slices: when one is spent the session yields to the
// loop, so the other sessions of the process answer in between (ferry-imapd(8)). `done` counts
// whatever the command measures its work in (octets written, messages looked at).
class Slice {
public:
    using Clock = std::chrono::steady_clock;

    Slice(uint64_t work, Clock::duration time, uint64_t done_before = 0, Clock::time_point now = Clock::now())
        : start_(done_before), work_(work), end_(now + time) {}

    bool spent(uint64_t done, Clock::time_point now) const { return done - start_ >= work_ || now >= end_; }
    bool spent(uint64_t done) const { return done - start_ >= work_ || Clock::now() >= end_; }

private:
    uint64_t start_;
    uint64_t work_;
    Clock::time_point end_;
};

}  // namespace ferry::imap
