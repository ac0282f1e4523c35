// Authentication-Results (RFC 8601): the field's value parsed into its authserv-id and results, for readers that act on our own verdicts.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::verify::authres {

// Limits: a value past them does not parse (a field this large is not one we wrote).
inline constexpr size_t kMaxValue = 16 * 1024;   // octets of the field's value
inline constexpr size_t kMaxResults = 64;        // resinfo entries
inline constexpr size_t kMaxProperties = 32;     // propspecs of one entry
inline constexpr size_t kMaxCommentDepth = 16;   // nested comments

struct Property {
    std::string ptype;     // "smtp", "header", "body", "policy" ... (lower case)
    std::string property;  // "mailfrom", "d", "dmarc" ... (lower case)
    std::string value;     // as written, quotes removed
};

struct Result {
    std::string method;   // "spf", "dkim", "dmarc", "arc" ... (lower case)
    std::string version;  // "1" in "dkim/1", else empty
    std::string result;   // "pass", "fail", "none" ... (lower case)
    std::string reason;   // reason="..." when given
    std::vector<Property> properties;

    // The value of ptype.property ("policy", "dmarc"), the first one given.
    std::optional<std::string> property(std::string_view ptype, std::string_view property) const;
};

struct Results {
    std::string authserv_id;  // as written; compare without case
    std::string version;      // the optional authres-version after it
    std::vector<Result> results;  // empty for "; none"
};

// The value after "Authentication-Results:" (folded lines and comments allowed), or nothing when it
// does not follow RFC 8601 section 2.2 or passes a limit above.
std::optional<Results> parse(std::string_view value);

// The first result of `method` in `r`, or nullptr.
const Result* find(const Results& r, std::string_view method);

}  // namespace ferry::verify::authres
