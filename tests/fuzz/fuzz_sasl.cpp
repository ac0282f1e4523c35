// Fuzz target: SASL (base64, PLAIN, LOGIN) as smtpd and popd run an AUTH exchange.
//
// Input: the first line is "<mechanism>[ <initial response>]", each further line one client response.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "common/auth/sasl.hpp"

namespace sasl = ferry::sasl;

namespace {

std::string_view next_line(std::string_view& in) {
    size_t nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
}

void exchange(std::string_view in) {
    std::string_view first = next_line(in);
    size_t sp = first.find(' ');
    auto mech = sasl::parse_mechanism(first.substr(0, sp));
    if (!mech) return;
    std::optional<std::string_view> ir;
    if (sp != std::string_view::npos) ir = first.substr(sp + 1);
    sasl::Exchange ex(*mech, sasl::Limits{64, 128});
    sasl::Step s = ex.start(ir);
    while (s.kind == sasl::Step::Kind::challenge && !in.empty()) s = ex.next(next_line(in));
    if (s.kind == sasl::Step::Kind::done) {
        // What an exchange accepts is within the limits and names a login.
        if (s.creds.authcid.empty() || s.creds.authcid.size() > 64 || s.creds.password.size() > 128) std::abort();
        if (!ex.finished()) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    exchange(in);
    // Strict base64: what decodes encodes back to the same text, and encoding always decodes.
    if (auto d = sasl::base64_decode(in); d && sasl::base64_encode(d.value()) != in) std::abort();
    auto e = sasl::base64_decode(sasl::base64_encode(in));
    if (!e || e.value() != in) std::abort();
    (void)sasl::parse_plain(in);
    (void)sasl::decode_plain(in);
    return 0;
}
