// Fuzz target: the wire encoder; split feeding gives the same bytes, and the DATA reader reads back what went in.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/mail/wire.hpp"
#include "common/smtp/smtp_proto.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string whole = ferry::mail::wire_encode(in);
    std::string split;
    ferry::mail::WireEncoder enc;
    for (size_t pos = 0; pos < in.size();) {
        size_t n = 1 + (static_cast<unsigned char>(in[pos]) % 7);
        enc.feed(in.substr(pos, n), split);
        pos += n;
    }
    enc.finish(split);
    if (whole != split) abort();
    // Without CR (which the reader refuses when bare) or NUL (which it may refuse), the round trip
    // gives the message back, a last line end added.
    if (in.find('\r') != std::string_view::npos || in.find('\0') != std::string_view::npos) return 0;
    ferry::smtp::DataLimits limits{1 << 30, 1 << 30, 1 << 30};
    ferry::smtp::DataReader reader(limits);
    std::string back;
    auto step = reader.feed(whole, back);
    if (step.status != ferry::smtp::DataReader::Status::done || step.consumed != whole.size() || reader.error()) abort();
    std::string expected(in);
    if (!expected.empty() && expected.back() != '\n') expected += '\n';
    if (back != expected) abort();
    return 0;
}
