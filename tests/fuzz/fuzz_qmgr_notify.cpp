// Fuzz target: the smtpd-to-qmgr notify protocol, one line at a time as ferry-qmgr reads it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/proto/qmgr.hpp"

namespace qp = ferry::proto::qmgr;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    while (!in.empty()) {
        size_t nl = in.find('\n');
        std::string_view line = in.substr(0, nl);
        in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
        auto m = qp::decode(line);
        if (!m || m.value().type != qp::Message::new_message) continue;
        // A queue id that decodes must encode back to a line that decodes to the same id.
        std::string again = qp::encode_new(m.value().id);
        auto r = qp::decode(std::string_view(again).substr(0, again.size() - 1));
        if (!r || r.value().type != qp::Message::new_message || r.value().id != m.value().id) std::abort();
    }
    return 0;
}
