// Fuzz target: queue files (ferry-spool(5)) as ferry-qmgr reads them from the spool.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/base/crc32c.hpp"
#include "common/spool/spool.hpp"

namespace spool = ferry::spool;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto m = spool::decode(in);
    if (!m) return 0;
    // The data stands right before the last END record ("end D [L]"), followed by the L octets of
    // late header fields, which a reader sees first.
    size_t end_at = in.rfind("\nend ");
    if (end_at == std::string_view::npos) std::abort();
    std::string_view lengths = in.substr(end_at + 5);
    lengths = lengths.substr(0, lengths.find('\n'));
    size_t space = lengths.find(' ');
    size_t late = space == std::string_view::npos ? 0 : std::strtoull(std::string(lengths.substr(space + 1)).c_str(), nullptr, 10);
    const std::string& decoded = m.value().data;
    if (late > decoded.size() || decoded.size() > end_at) std::abort();
    std::string_view body = in.substr(end_at - decoded.size(), decoded.size() - late);
    std::string_view fields = in.substr(end_at - late, late);
    if (decoded.compare(0, late, fields) != 0 || decoded.compare(late, std::string::npos, body) != 0) std::abort();
    // What decodes is written back in a form that decodes again, and that form is stable.
    const auto& env = m.value().envelope;
    std::string once = spool::encode_header(env) + m.value().data + spool::encode_trailer(m.value().data.size());
    auto again = spool::decode(once);
    if (!again || again.value().data != m.value().data || again.value().envelope.recipients.size() != env.recipients.size())
        std::abort();
    const auto& env2 = again.value().envelope;
    if (spool::encode_header(env2) + again.value().data + spool::encode_trailer(again.value().data.size()) != once)
        std::abort();
    // With a checksum, as the writer makes it: decodes to the same; one byte changed does not.
    std::string head = spool::encode_header(env) + m.value().data;
    std::string summed = head + spool::encode_trailer(m.value().data.size(), 0, ferry::crc32c(0, head));
    auto checked = spool::decode(summed);
    if (!checked || checked.value().data != m.value().data) std::abort();
    summed[summed.size() / 3] ^= 1;
    if (spool::decode(summed)) std::abort();
    return 0;
}
