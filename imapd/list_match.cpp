// LIST and LSUB pattern matching (RFC 9051 section 6.3.9): "*" matches anything, "%" anything but the delimiter.
#include "imapd/list_match.hpp"

#include <string>
#include <vector>

#include "imapd/reader.hpp"

namespace ferry::imap {

namespace {

bool is_inbox_level(std::string_view s, char delim) {
    return s.size() >= 5 && upper(s.substr(0, 5)) == "INBOX" && (s.size() == 5 || s[5] == delim);
}

}  // namespace

bool list_match(std::string_view pattern, std::string_view name, char delimiter) {
    // INBOX is case-insensitive (RFC 9051 section 5.1): compare its level as "INBOX" on both sides.
    std::string p(pattern), n(name);
    if (is_inbox_level(p, delimiter)) p.replace(0, 5, "INBOX");
    if (is_inbox_level(n, delimiter)) n.replace(0, 5, "INBOX");
    // ok[j]: the pattern read so far matches the first j bytes of the name (a DP, so no backtracking).
    std::vector<char> ok(n.size() + 1, 0), next(n.size() + 1);
    ok[0] = 1;
    for (char c : p) {
        std::fill(next.begin(), next.end(), 0);
        if (c == '*' || c == '%') {
            bool carry = false;
            for (size_t j = 0; j <= n.size(); ++j) {
                if (ok[j]) carry = true;
                next[j] = carry;
                if (c == '%' && j < n.size() && n[j] == delimiter) carry = false;
            }
        } else {
            for (size_t j = 0; j < n.size(); ++j) next[j + 1] = ok[j] && n[j] == c;
        }
        ok.swap(next);
    }
    return ok[n.size()];
}

}  // namespace ferry::imap
