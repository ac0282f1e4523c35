// The spam rule file (ferry-spam-rules(5)): a pure, line-based parser with limits, and the built-in rules.
#pragma once

#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"

namespace ferry::verify::spam {

// What a rule file may hold; past a limit the file is refused with the line that passed it.
struct RuleLimits {
    size_t max_rules = 1000;        // header and body rules, built-ins included
    size_t max_pattern = 512;       // octets of one pattern (a regex or a substring)
    size_t max_line = 4096;         // octets of one line of the file
    size_t max_file = 1024 * 1024;  // octets of the whole file
    size_t max_name = 64;           // octets of a rule name
    double max_score = 10000;       // |score| of one rule
};

enum class RuleTarget { header, body };

struct Rule {
    std::string name;                   // [A-Za-z0-9_]+, unique
    RuleTarget target = RuleTarget::body;
    std::string field;                  // header rules: the field name, lower case
    std::string pattern;                // as written (without the slashes of a regex)
    bool is_regex = false;
    bool icase = false;                 // a regex's "i" flag (substrings always ignore ASCII case)
    std::shared_ptr<const std::regex> re;  // compiled, for a regex; shared, so rule sets copy cheaply
    std::string needle;                 // a substring rule's pattern, ASCII lower case
    double score = 0;
};

// A set of rules: the built-ins, then a file's rules and score changes on top.
struct RuleSet {
    std::vector<Rule> rules;
    // Scores of the checks that are not text rules (SPF_FAIL, SPF_SOFTFAIL), which `score` lines may change.
    double spf_fail = 2.0;
    double spf_softfail = 1.0;
};

// The GTUBE string (SpamAssassin's Generic Test for Unsolicited Bulk Email).
inline constexpr std::string_view kGtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

// The rules ferry has without a file: GTUBE (1000) and the SPF scores.
RuleSet builtin_rules();

// Parses a rule file over `base` (normally builtin_rules()). Lines:
//   # comment            (and blank lines)
//   header NAME FIELD SCORE MATCH
//   body   NAME SCORE MATCH
//   score  NAME SCORE    (changes the score of a rule defined before, or of SPF_FAIL / SPF_SOFTFAIL)
// MATCH is the rest of the line: /regex/ or /regex/i (ECMAScript), or else a substring matched
// ignoring ASCII case. Errors name the line: "line 3: ...".
Result<RuleSet> parse_rules(std::string_view text, RuleSet base, const RuleLimits& limits = {});

// Parses one decimal score ("3.5", "-2", "+1e1" is refused): digits, at most one '.', an optional sign.
bool parse_score(std::string_view s, double& out);

}  // namespace ferry::verify::spam
