// Fuzz target: the SMTP/LMTP reply reader; whole and split feeding must give the same replies, within the limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "common/smtp/reply.hpp"

namespace {

using ferry::smtp::ReplyReader;

// Reads replies from `in` in pieces whose sizes come from the data; the texts read and the final status.
std::vector<std::string> read(std::string_view in, bool split, ReplyReader::Status& last) {
    ferry::smtp::ReplyLimits limits{5, 64};
    ReplyReader r(limits);
    std::vector<std::string> texts;
    size_t pos = 0;
    last = ReplyReader::Status::need_more;
    while (pos < in.size()) {
        size_t n = split ? 1 + (static_cast<unsigned char>(in[pos]) % 5) : in.size() - pos;
        std::string_view piece = in.substr(pos, std::min(n, in.size() - pos));
        auto step = r.feed(piece);
        if (step.consumed > piece.size()) abort();
        last = step.status;
        if (last == ReplyReader::Status::error) break;
        if (last == ReplyReader::Status::done) {
            auto reply = r.take();
            if (reply.code < 200 || reply.code > 599 || reply.lines.empty() || reply.lines.size() > limits.max_lines) abort();
            texts.push_back(reply.text);
        }
        pos += step.consumed;
    }
    return texts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    ReplyReader::Status a, b;
    auto whole = read(in, false, a);
    auto split = read(in, true, b);
    if (a != b || whole != split) abort();
    return 0;
}
