// Fuzz target: the DATA reader; whole and split feeding must agree, and it must never read past its end.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/smtp/smtp_proto.hpp"

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
    }
    if (a.consumed > in.size()) abort();
    return 0;
}
