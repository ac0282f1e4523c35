// ferry-smtpd's filter of incoming Authentication-Results fields that claim our authserv-id (RFC 8601 5).
#include <catch.hpp>

#include <string>

#include "common/verify/forged_fields.hpp"

namespace {

// The filter fed in pieces of `step` bytes, as DATA arrives.
std::string filtered(const std::string& msg, size_t step, size_t* dropped = nullptr) {
    ferry::verify::ForgedResultsFilter f("mx.example.org");
    std::string out;
    for (size_t i = 0; i < msg.size(); i += step) f.feed(std::string_view(msg).substr(i, step), out);
    f.finish(out);
    if (dropped) *dropped = f.dropped();
    return out;
}

}  // namespace

TEST_CASE("smtpd: incoming Authentication-Results claiming our authserv-id are dropped", "[spf]") {
    std::string msg = "Subject: x\n"
                      "Authentication-Results: MX.example.org;\n\tspf=pass smtp.mailfrom=a@b.example\n"
                      "Authentication-Results: (comment) mx.example.org; dkim=pass\n"
                      "Authentication-Results: other.example; spf=fail\n"
                      "authentication-results: mx.example.org.evil; spf=pass\n"
                      "From: a@b.example\n"
                      "\n"
                      "Authentication-Results: mx.example.org; spf=pass\n"  // the body is left alone
                      "body\n";
    std::string want = "Subject: x\n"
                       "Authentication-Results: other.example; spf=fail\n"
                       "authentication-results: mx.example.org.evil; spf=pass\n"
                       "From: a@b.example\n"
                       "\n"
                       "Authentication-Results: mx.example.org; spf=pass\n"
                       "body\n";
    for (size_t step : {1, 2, 7, 64, 4096}) {
        size_t dropped = 0;
        CHECK(filtered(msg, step, &dropped) == want);
        CHECK(dropped == 2);
    }
    // CRLF, no body, a message that ends inside a forged folded field.
    CHECK(filtered("A: 1\r\nAuthentication-Results: mx.example.org; x\r\n\tmore", 3) == "A: 1\r\n");
    CHECK(filtered("no header here\nAuthentication-Results: mx.example.org\n", 5) ==
          "no header here\nAuthentication-Results: mx.example.org\n");
}
