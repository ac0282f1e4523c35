// Fuzz target: readers of files and lines other programs wrote: queue files, qmgr notices, SASL, config.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/program/config.hpp"
#include "common/proto/qmgr.hpp"
#include "common/auth/sasl.hpp"
#include "common/spool/spool.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    (void)ferry::spool::decode(in);
    (void)ferry::proto::qmgr::decode(in);
    (void)ferry::sasl::base64_decode(in);
    (void)ferry::sasl::parse_plain(in);
    (void)ferry::Config::parse(in, "fuzz.conf", "smtpd");
    return 0;
}
