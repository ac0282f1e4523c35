// Fuzz target: the spam rule file parser, and the score of the input as a message under the substring rules it accepted.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "common/verify/spam_score.hpp"

using namespace ferry::verify::spam;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    RuleLimits limits;
    limits.max_rules = 50;
    limits.max_pattern = 64;  // a fuzzer's regexes stay small, so that matching them stays fast
    auto r = parse_rules(in, builtin_rules(), limits);
    if (!r) {
        if (r.error().what().empty()) abort();
        return 0;
    }
    if (r->rules.size() > limits.max_rules) abort();
    for (const auto& rule : r->rules) {
        if (rule.pattern.empty() || rule.pattern.size() > limits.max_pattern + 64) abort();
        if (rule.is_regex != static_cast<bool>(rule.re)) abort();
    }
    // The input as a message too, under its substring rules (a regex the fuzzer writes may
    // backtrack for ever: that is libstdc++'s matcher, which the spam check bounds by spam_timeout).
    RuleSet plain = r.value();
    std::erase_if(plain.rules, [](const Rule& rule) { return rule.is_regex; });
    score(plain, in.substr(0, 4096), {"fail", {}}, {4096, 128});
    return 0;
}
