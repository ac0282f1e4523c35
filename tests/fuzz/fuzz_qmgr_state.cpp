// Fuzz target: the per-recipient state file (ferry-spool(5)), as ferry-qmgr reads it after a restart.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/spool/state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto state = ferry::qmgr::decode_state(in);
    if (!state) return 0;
    // What decodes is written back in a form that decodes again, and that form is stable.
    std::string once = ferry::qmgr::encode_state(state.value());
    auto again = ferry::qmgr::decode_state(once);
    if (!again || again.value().rcpts.size() != state.value().rcpts.size()) std::abort();
    if (ferry::qmgr::encode_state(again.value()) != once) std::abort();
    (void)state.value().all_final();
    return 0;
}
