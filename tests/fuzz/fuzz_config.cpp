// Fuzz target: ferry.conf as each program parses it, with every key read back through ${} expansion.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/program/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    for (const char* program : {"smtpd", "qmgr", "mda", "popd"}) {
        auto c = ferry::Config::parse(in, "fuzz.conf", program);
        if (!c) continue;
        for (const auto& key : ferry::config_keys()) (void)c.value().str(key.name);
        // What parses is dumped in a form that parses again to the same configuration.
        std::string dump = c.value().dump(true);
        auto again = ferry::Config::parse(dump, "dump.conf", program);
        if (!again || again.value().dump(true) != dump) std::abort();
    }
    return 0;
}
