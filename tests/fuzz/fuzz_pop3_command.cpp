// Fuzz target: POP3 line scanning and command parsing, as ferry-popd reads its input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "popd/command.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    ferry::pop3::Limits limits;
    bool skipping = false;
    while (!in.empty()) {
        auto scan = ferry::pop3::scan_line(in, limits.max_line, skipping);
        if (scan.status == ferry::pop3::LineScan::line) (void)ferry::pop3::parse_command(scan.text, limits);
        if (scan.status == ferry::pop3::LineScan::too_long) skipping = !scan.line_ended;
        if (scan.status == ferry::pop3::LineScan::skipped) skipping = false;
        if (scan.consumed == 0) break;
        in.remove_prefix(scan.consumed);
    }
    return 0;
}
