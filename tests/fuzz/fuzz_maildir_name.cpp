// Fuzz target: Maildir file names as ferry-popd lists them, and the names ferry-mda makes from a host.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/store/maildir.hpp"

namespace md = ferry::maildir;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    if (auto info = md::parse_name(in)) {
        // The base name is a prefix of the unique part, which is a prefix of the name.
        if (info.value().base.empty() || in.substr(0, info.value().unique.size()) != info.value().unique) std::abort();
        if (info.value().unique.substr(0, info.value().base.size()) != info.value().base) std::abort();
    }
    (void)md::account_maildir("/mail", in);
    (void)md::crlf_size(in);
    (void)md::unterminated_octets(in);
    // Any host name gives a name that parses, with a base within the UIDL-safe length.
    std::string host(in.substr(0, 300));
    if (host.empty()) return 0;
    std::string name = md::unique_name(size, size + 10, host);
    auto parsed = md::parse_name(name);
    if (!parsed || parsed.value().base.size() > md::kMaxBaseLength) std::abort();
    if (parsed.value().size != size || parsed.value().vsize != size + 10) std::abort();
    for (size_t room : {0, 1, 8, 9, 20}) (void)md::short_host(host, room);
    return 0;
}
