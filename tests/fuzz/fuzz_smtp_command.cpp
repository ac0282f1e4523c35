// Fuzz target: SMTP command lines and RFC 5321 paths, as ferry-smtpd and ferry-mda parse them.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/smtp/smtp_proto.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    ferry::smtp::LineReader lines(512);
    while (!in.empty()) {
        auto step = lines.next(in);
        if (step.status == ferry::smtp::LineReader::Status::line) {
            (void)ferry::smtp::parse_command(step.line);
            (void)ferry::smtp::parse_path(step.line, true);
        }
        if (step.consumed == 0) break;
        in.remove_prefix(step.consumed);
    }
    return 0;
}
