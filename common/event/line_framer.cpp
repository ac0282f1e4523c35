// Cuts a stream's input buffer into lines under a length limit: the one line reader of the daemons.
#include "common/event/line_framer.hpp"

#include <algorithm>

namespace ferry {

namespace {

// Position of the first LF within the first `limit` bytes of `input`, or -1.
ev_ssize_t find_lf(evbuffer* input, size_t limit) {
    evbuffer_ptr end;
    if (evbuffer_ptr_set(input, &end, limit, EVBUFFER_PTR_SET) != 0) return -1;
    evbuffer_ptr lf = evbuffer_search_range(input, "\n", 1, nullptr, &end);
    return lf.pos;
}

}  // namespace

// Drains the tail of a line being skipped; true when its LF was found (the next line may follow).
bool LineFramer::drain_discarded(evbuffer* input) {
    size_t length = evbuffer_get_length(input);
    ev_ssize_t lf = find_lf(input, length);
    if (lf < 0) {
        evbuffer_drain(input, length);
        return false;
    }
    evbuffer_drain(input, static_cast<size_t>(lf) + 1);
    discarding_ = false;
    return true;
}

LineFramer::Step LineFramer::next(evbuffer* input) {
    if (discarding_ && !drain_discarded(input)) return {};
    size_t length = evbuffer_get_length(input);
    // A line of max_ - 2 octets plus CRLF has its LF at index max_ - 1 at the latest.
    ev_ssize_t lf = find_lf(input, std::min(length, max_));
    if (lf < 0) {
        if (length < max_) return {};
        evbuffer_drain(input, max_);
        discarding_ = true;
        return {Status::too_long, {}};
    }
    std::string line(static_cast<size_t>(lf), '\0');
    evbuffer_remove(input, line.data(), line.size());
    evbuffer_drain(input, 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() + 2 > max_) return {Status::too_long, {}};
    return {Status::line, std::move(line)};
}

}  // namespace ferry
