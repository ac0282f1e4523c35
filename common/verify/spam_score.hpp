// The spam score of one message: rules over its header and decoded text, plus what other checks found (SPF, DNS lists).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/verify/spam_rules.hpp"

namespace ferry::verify::spam {

// What other checks found out about the message, each with the weight it adds.
struct Facts {
    std::string spf;  // the SPF result ("fail", "softfail", ...), "" when not checked
    struct Listed {
        std::string test;  // "DNSBL_zen.example" or "DNSWL_list.example"
        double weight = 0;
    };
    std::vector<Listed> lists;  // the DNS lists that listed the client, and external scanners' scores
};

struct Report {
    double score = 0;
    std::vector<std::string> tests;  // the rules that fired, in rule order, then the facts
    size_t rule_errors = 0;          // regex matches abandoned (too complex): they count as no match
};

// Limits of one scoring: the text rules see the first `max_bytes` octets of the message (header
// included); regexes run on lines of at most `max_line` octets (a longer line is cut in pieces).
struct ScoreLimits {
    size_t max_bytes = 256 * 1024;
    size_t max_line = 2048;
};

// Scores `message` (LF or CRLF line ends; the caller passes at most limits.max_bytes of it):
// header rules over each field of the top-level header (unfolded, RFC 2047 decoded), body rules
// over the text/* parts (transfer encoding and charset decoded to UTF-8); each rule counts once.
// Pure and thread-safe: a RuleSet may be shared by threads that score at the same time.
Report score(const RuleSet& rules, std::string_view message, const Facts& facts, const ScoreLimits& limits = {});

// Adds what other checks found (SPF_FAIL, SPF_SOFTFAIL with the rule set's scores, each listing) to `r`.
void add_facts(const RuleSet& rules, const Facts& facts, Report& r);

// "1000.0", "-2.5": one decimal, as X-Spam-Score and X-Spam-Status print it.
std::string format_score(double s);

// "Yes, score=1000.0 required=5.0 tests=GTUBE,SPF_FAIL" (SpamAssassin's X-Spam-Status form;
// "tests=none" when nothing fired).
std::string status_value(const Report& r, double required);

}  // namespace ferry::verify::spam
