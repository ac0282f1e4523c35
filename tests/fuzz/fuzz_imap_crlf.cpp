// Fuzz target: FETCH's CRLF conversion; whole, split and into a buffer of exactly the worst-case room, all give the plain rule's bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "imapd/fetch_cache.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string expected;
    for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) expected += '\r';
        expected += in[i];
    }
    std::string whole, split;
    ferry::imap::CrlfConverter a, b, c;
    a.feed(in, whole);
    for (size_t pos = 0; pos < in.size();) {
        size_t n = 1 + (static_cast<unsigned char>(in[pos]) % 67);
        b.feed(in.substr(pos, n), split);
        pos += n;
    }
    // A heap buffer of exactly the room convert asks for, so a store past it is a sanitizer's finding.
    std::unique_ptr<char[]> room(new char[2 * in.size()]);
    size_t n = c.convert(in, room.get());
    if (whole != expected || split != expected || std::string_view(room.get(), n) != expected) abort();
    return 0;
}
