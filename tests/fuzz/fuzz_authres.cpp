// Fuzz target: the Authentication-Results parser (RFC 8601) over any value, with its limits checked.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/verify/authres.hpp"

using namespace ferry::verify;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto r = authres::parse(in);
    if (!r) return 0;
    if (in.size() > authres::kMaxValue || r->authserv_id.empty() || r->results.size() > authres::kMaxResults) abort();
    for (const auto& res : r->results) {
        if (res.method.empty() || res.result.empty() || res.properties.size() > authres::kMaxProperties) abort();
        for (const auto& p : res.properties)
            if (p.ptype.empty() || p.property.empty()) abort();  // a value may be ""
        (void)res.property("policy", "dmarc");
    }
    (void)authres::find(*r, "dmarc");
    return 0;
}
