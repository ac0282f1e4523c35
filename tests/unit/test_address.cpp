// The one address grammar: one table of valid and invalid addresses in both forms, run against
// the grammar itself, the SMTP path parser and the stored-address check ferry-admin uses.
#include <catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "common/mail/address.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using test::domain_of_length;

namespace {

std::string repeat(const std::string& s, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += s;
    return out;
}

const std::string e_acute = "\xc3\xa9";  // U+00E9, two octets

struct AddressCase {
    std::string text;
    bool smtp_ascii;    // a mailbox in an SMTP path (RFC 5321)
    bool smtp_utf8;     // the same with SMTPUTF8 (RFC 6531)
    bool store_ascii;   // an address ferry stores (ferry-admin, aliases)
    bool store_utf8;    // the same with ferry-admin --utf8
};

std::vector<AddressCase> address_cases() {
    const std::string l64(64, 'l');
    return {
        // ASCII: valid everywhere.
        {"a@b.test", true, true, true, true},
        {"first.last+tag@sub.example.test", true, true, true, true},
        {"o'brien@localhost", true, true, true, true},
        {"!#$%&'*+-/=?^_`{|}~@x.test", true, true, true, true},
        {"u@xn--bcher-kva.test", true, true, true, true},
        {"u@a-b.c0.test", true, true, true, true},
        // SMTP forms that ferry does not store: quoted local parts and address literals.
        {"\"a b\"@x.test", true, true, false, false},
        {"\"a\\\"b\"@x.test", true, true, false, false},
        {"\"demo\"@example.test", true, true, false, false},
        {"\"a@b\"@x.test", true, true, false, false},
        {"u@[127.0.0.1]", true, true, false, false},
        {"u@[IPv6:::1]", true, true, false, false},
        {"u@[x-tag:stuff]", true, true, false, false},
        // Invalid in every form.
        {"", false, false, false, false},
        {"demo", false, false, false, false},
        {"@example.test", false, false, false, false},
        {"demo@", false, false, false, false},
        {"a@@b.test", false, false, false, false},
        {".demo@x.test", false, false, false, false},
        {"demo.@x.test", false, false, false, false},
        {"de..mo@x.test", false, false, false, false},
        {"de mo@x.test", false, false, false, false},
        {"de\tmo@x.test", false, false, false, false},
        {"a(b)@x.test", false, false, false, false},
        {"\"unterminated@b.test", false, false, false, false},
        {"\"ctl\x01\"@b.test", false, false, false, false},
        {"a@b..test", false, false, false, false},
        {"a@-b.test", false, false, false, false},
        {"a@b-.test", false, false, false, false},
        {"a@b.test.", false, false, false, false},
        {"a@b_c.test", false, false, false, false},
        {"a@[127.0.0.256]", false, false, false, false},
        {"a@[1.2.3]", false, false, false, false},
        {"a@[IPv6:zz::1]", false, false, false, false},
        {"a@[127.0.0.1", false, false, false, false},
        // The UTF-8 form (RFC 6531): only where it is asked for.
        {"r" + e_acute + "ne@b.test", false, true, false, true},
        {"u@b" + e_acute + "cher.test", false, true, false, true},
        {"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", false, true, false, true},
        {"\"r" + e_acute + " ne\"@b.test", false, true, false, false},
        {"\xf4\x8f\xbf\xbf@b.test", false, true, false, true},  // U+10FFFF, the last code point
        {"u@[" + e_acute + "]", false, false, false, false},    // address literals stay ASCII
        {"u@-" + e_acute + ".test", false, false, false, false},
        // Malformed UTF-8 is refused in both forms.
        {"\xc0\xaf@b.test", false, false, false, false},          // overlong "/"
        {"\xe0\x80\xaf@b.test", false, false, false, false},      // overlong, three octets
        {"\xed\xa0\x80@b.test", false, false, false, false},      // a surrogate
        {"\xf4\x90\x80\x80@b.test", false, false, false, false},  // above U+10FFFF
        {"a\xc3@b.test", false, false, false, false},             // truncated
        {"\x80@b.test", false, false, false, false},              // a lone continuation octet
        {"u@b\xff.test", false, false, false, false},
        // RFC 5321 4.5.3.1 limits, in octets, exactly at and one past.
        {l64 + "@b.test", true, true, true, true},
        {l64 + "l@b.test", false, false, false, false},
        {"\"" + std::string(61, 'q') + " \"@b.test", true, true, false, false},  // quotes count
        {"\"" + std::string(62, 'q') + " \"@b.test", false, false, false, false},
        {repeat(e_acute, 32) + "@b.test", false, true, false, true},
        {repeat(e_acute, 32) + "l@b.test", false, false, false, false},
        {"u@" + std::string(63, 'x') + ".test", true, true, true, true},
        {"u@" + std::string(64, 'x') + ".test", false, false, false, false},
        {"u@" + repeat(e_acute, 31) + "x.test", false, true, false, true},
        {"u@" + repeat(e_acute, 32) + ".test", false, false, false, false},
        {l64 + "@" + domain_of_length(189), true, true, true, true},     // 254 octets: a 256-octet path
        {l64 + "@" + domain_of_length(190), true, true, false, false},   // a mailbox, but no path holds it
        {"a@" + domain_of_length(255), true, true, false, false},
        {"a@" + domain_of_length(256), false, false, false, false},
    };
}

}  // namespace

TEST_CASE("address grammar: one table, both forms, every caller", "[address]") {
    for (const auto& c : address_cases()) {
        INFO("address: " << c.text);
        CHECK(parse_mailbox(c.text, AddressForm::ascii).ok() == c.smtp_ascii);
        CHECK(parse_mailbox(c.text, AddressForm::utf8).ok() == c.smtp_utf8);
        CHECK(valid_address(c.text, AddressForm::ascii) == c.store_ascii);
        CHECK(valid_address(c.text, AddressForm::utf8) == c.store_utf8);
        // SMTP's path parser is the same grammar plus the path limit of 256 octets.
        smtp::Limits wide;
        wide.max_path = 1000;
        std::string path = "<" + c.text + ">";
        CHECK(smtp::parse_path(path, false, wide).ok() == c.smtp_ascii);
        CHECK(smtp::parse_path(path, false, wide, AddressForm::utf8).ok() == c.smtp_utf8);
        if (!c.smtp_ascii) {
            auto r = smtp::parse_path(path, false, wide);
            if (!r) CHECK(r.error().enhanced == "5.1.3");
        }
        bool path_fits = path.size() <= kMaxPath;
        CHECK(smtp::parse_path(path, false).ok() == (c.smtp_ascii && path_fits));
    }
}

TEST_CASE("address grammar: domains alone, both forms, 255 octets", "[address]") {
    struct DomainCase {
        std::string text;
        bool ascii;
        bool utf8;
    };
    const std::vector<DomainCase> cases = {
        {"example.test", true, true},
        {"localhost", true, true},
        {"xn--bcher-kva.test", true, true},
        {"b" + e_acute + "cher.test", false, true},
        {domain_of_length(253), true, true},
        {domain_of_length(254), true, true},
        {domain_of_length(255), true, true},
        {domain_of_length(256), false, false},
        {std::string(63, 'x'), true, true},
        {std::string(64, 'x'), false, false},
        {"", false, false},
        {".test", false, false},
        {"a..test", false, false},
        {"-a.test", false, false},
        {"a_b.test", false, false},
        {"[127.0.0.1]", false, false},  // an address literal is not a domain name
    };
    for (const auto& c : cases) {
        INFO("domain: " << c.text);
        CHECK(valid_domain(c.text, AddressForm::ascii) == c.ascii);
        CHECK(valid_domain(c.text, AddressForm::utf8) == c.utf8);
    }
}

TEST_CASE("address grammar: the base of a subaddress (RFC 5233, recipient_delimiter)", "[address]") {
    struct Row {
        const char* address;
        const char* delimiters;
        std::optional<std::string> base;
    };
    const Row rows[] = {
        {"user+tag@example.test", "+", "user@example.test"},
        {"user+a+b@example.test", "+", "user@example.test"},   // the first delimiter cuts
        {"user+@example.test", "+", "user@example.test"},      // an empty detail is a detail
        {"user-tag@example.test", "+", std::nullopt},
        {"user-tag@example.test", "+-", "user@example.test"},  // each character a delimiter
        {"us-er+tag@example.test", "+-", "us@example.test"},
        {"user@example.test", "+", std::nullopt},
        {"+tag@example.test", "+", std::nullopt},              // no base to deliver to
        {"user+tag@example.test", "", std::nullopt},           // off
        {"user+tag", "+", std::nullopt},                       // no domain
        {"a+b@c+d.test", "+", "a@c+d.test"},                   // the domain is never cut
    };
    for (const auto& r : rows) {
        INFO(r.address << " with \"" << r.delimiters << "\"");
        CHECK(subaddress_base(r.address, r.delimiters) == r.base);
    }
}
