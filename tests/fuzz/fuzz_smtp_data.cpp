// Fuzz target: the DATA reader; whole and split feeding must agree (error included), and it must never read past its end.
// The same for its chunked framing (BDAT): it takes every byte, and whole and split agree after end_chunks.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/smtp/smtp_proto.hpp"

namespace {

void chunked(std::string_view in, const ferry::smtp::DataLimits& limits) {
    using ferry::smtp::DataReader;
    ferry::smtp::DataLimits with_loop = limits;
    with_loop.max_received = 3;
    DataReader whole(with_loop, DataReader::Framing::chunked), split(with_loop, DataReader::Framing::chunked);
    std::string out_whole, out_split;
    auto a = whole.feed(in, out_whole);
    if (a.status != DataReader::Status::need_more || a.consumed != in.size()) abort();
    for (size_t at = 0; at < in.size();) {
        size_t n = 1 + (static_cast<unsigned char>(in[at]) % 5);
        std::string_view piece = in.substr(at, n);
        auto b = split.feed(piece, out_split);
        if (b.status != DataReader::Status::need_more || b.consumed != piece.size()) abort();
        at += piece.size();
    }
    whole.end_chunks();
    split.end_chunks();
    if (out_whole != out_split) abort();
    if (whole.error().has_value() != split.error().has_value()) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    ferry::smtp::DataLimits limits{4096, 200, 1024};
    ferry::smtp::DataReader whole(limits), split(limits);
    std::string out_whole, out_split;
    auto a = whole.feed(in, out_whole);
    size_t consumed = 0;
    ferry::smtp::DataReader::Step b;
    while (consumed < in.size()) {
        size_t n = 1 + (static_cast<unsigned char>(in[consumed]) % 7);
        std::string_view piece = in.substr(consumed, n);
        b = split.feed(piece, out_split);
        consumed += b.consumed;
        if (b.status == ferry::smtp::DataReader::Status::done) break;
    }
    if (a.status == ferry::smtp::DataReader::Status::done) {
        if (b.status != a.status || consumed != a.consumed || out_whole != out_split) abort();
        if (whole.error().has_value() != split.error().has_value()) abort();
        // Whole lines are taken in runs, pieces octet by octet: the first error must be the same.
        if (whole.error() && (whole.error()->code != split.error()->code || whole.error()->what() != split.error()->what()))
            abort();
    }
    if (a.consumed > in.size()) abort();
    chunked(in, limits);
    return 0;
}
