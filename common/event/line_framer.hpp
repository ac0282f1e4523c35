// Cuts a stream's input buffer into lines under a length limit: the one line reader of the daemons.
#pragma once

#include <event2/buffer.h>

#include <cstddef>
#include <string>

namespace ferry {

// A line ends at LF; a CR before it is dropped (so CRLF and bare LF both end a line; whether a bare
// LF is acceptable is the protocol's call). `max_line` counts the line with a two-octet CRLF, as
// RFC 5321 4.5.3.1.4, RFC 2033 and RFC 2449 count command lines. A longer line is reported once as
// too_long as soon as it is known (even before its LF has come), and the rest of it, through its LF,
// is then drained silently: no tail of an over-long line is ever read as a line. The search never
// looks further than max_line bytes into the buffer, so a flood without LF costs no rescans.
class LineFramer {
public:
    enum class Status { need_more, line, too_long };
    struct Step {
        Status status = Status::need_more;
        std::string line;  // when line: without CR LF
    };

    explicit LineFramer(size_t max_line) : max_(max_line < 2 ? 2 : max_line) {}

    // The next step, taking what it reports (and any skipped tail) out of `input`.
    Step next(evbuffer* input);
    // Drops the rest of the current line through its LF without reporting it (e.g. after a
    // SASL exchange ended in the middle of a line).
    void discard_line() { discarding_ = true; }
    // True while the tail of an over-long (or discarded) line is still to be drained.
    bool discarding() const { return discarding_; }
    size_t max_line() const { return max_; }

private:
    bool drain_discarded(evbuffer* input);
    size_t max_;
    bool discarding_ = false;
};

}  // namespace ferry
