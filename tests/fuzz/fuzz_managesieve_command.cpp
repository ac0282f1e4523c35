// Fuzz target: ManageSieve command and SASL response scanning, as ferry-managesieve reads its input.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mda/managesieve/command.hpp"
#include "mda/managesieve/response.hpp"

using namespace ferry::managesieve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    // The first byte picks small or default limits, so the limits themselves get hit.
    Limits limits;
    if (data[0] & 1) {
        limits.max_line = 16 + (data[0] >> 1);
        limits.max_literal = data[0] >> 2;
        limits.max_quoted = 8;
        limits.max_args = 2;
    }
    bool response = data[0] & 2;
    std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    while (!in.empty()) {
        Scan s = response ? scan_response(in, limits) : scan_command(in, limits);
        if (s.status == Scan::Status::need_more) break;
        if (s.consumed == 0 || s.consumed > in.size()) __builtin_trap();  // no progress, or past the input
        in.remove_prefix(s.consumed);
        if (s.status == Scan::Status::command) {
            if (auto r = interpret(s.command)) (void)string_token(r->name);
            for (const auto& a : s.command.args) (void)string_token(a.text);
            continue;
        }
        (void)no(s.code, s.error);
        size_t drop = static_cast<size_t>(std::min<uint64_t>(s.discard, in.size()));
        in.remove_prefix(drop);
        if (s.skip_line) {
            size_t lf = in.find('\n');
            in.remove_prefix(lf == std::string_view::npos ? in.size() : lf + 1);
        }
    }
    return 0;
}
