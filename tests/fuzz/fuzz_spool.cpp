// Fuzz target: queue files (ferry-spool(5)) as ferry-qmgr reads them from the spool.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/spool/spool.hpp"

namespace spool = ferry::spool;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto m = spool::decode(in);
    if (!m) return 0;
    // The data is what stands right before the last END record, whose length it has.
    size_t end_at = in.rfind("\nend ");
    if (end_at == std::string_view::npos || !in.substr(0, end_at).ends_with(m.value().data)) std::abort();
    // What decodes is written back in a form that decodes again, and that form is stable.
    const auto& env = m.value().envelope;
    std::string once = spool::encode_header(env) + m.value().data + spool::encode_trailer(m.value().data.size());
    auto again = spool::decode(once);
    if (!again || again.value().data != m.value().data || again.value().envelope.recipients.size() != env.recipients.size())
        std::abort();
    const auto& env2 = again.value().envelope;
    if (spool::encode_header(env2) + again.value().data + spool::encode_trailer(again.value().data.size()) != once)
        std::abort();
    return 0;
}
