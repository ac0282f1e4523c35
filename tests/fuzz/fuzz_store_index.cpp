// Fuzz target: the mailbox index record decoder (ferry-mailstore(5)), as a reader meets a damaged file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/store/index_record.hpp"

namespace st = ferry::store;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view rest(reinterpret_cast<const char*>(data), size);
    // Records one after another, as Index reads a file, until one is incomplete or bad.
    while (!rest.empty()) {
        st::DecodeResult d = st::decode(rest);
        if (d.status != st::Decoded::ok) break;
        if (d.used == 0 || d.used > rest.size()) std::abort();
        // What decodes encodes to a line that decodes to the same record again.
        std::string again = st::encode(d.record);
        st::DecodeResult e = st::decode(again);
        if (e.status != st::Decoded::ok || e.used != again.size() || st::encode(e.record) != again) std::abort();
        if (again.find('\n') != again.size() - 1) std::abort();
        rest.remove_prefix(d.used);
    }
    std::string out;
    std::string_view token(reinterpret_cast<const char*>(data), size);
    if (st::unescape_token(token, out) && st::escape_token(out).empty()) std::abort();
    std::string esc = st::escape_token(token);
    if (!st::unescape_token(esc, out) || out != token) std::abort();
    return 0;
}
