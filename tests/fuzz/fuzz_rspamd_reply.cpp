// Fuzz target: rspamd's /checkv2 JSON reply reader, under small limits so that they are reached.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/verify/rspamd_reply.hpp"

using namespace ferry::verify::spam;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    RspamdLimits limits;
    limits.max_depth = 8;
    limits.max_symbols = 20;
    limits.max_string = 64;
    std::string why;
    auto r = parse_rspamd_reply(in, &why, limits);
    if (!r) {
        if (why.empty()) abort();  // every refusal says why
        return 0;
    }
    if (!std::isfinite(r->score) || !std::isfinite(r->required_score)) abort();
    if (r->symbols.size() > limits.max_symbols || r->action.size() > limits.max_string) abort();
    for (const auto& [name, score] : r->symbols)
        if (name.size() > limits.max_string || !std::isfinite(score)) abort();
    if (!parse_rspamd_reply(in)) abort();  // what passes the small limits passes the default ones too
    return 0;
}
