// Fuzz target: the DNS answer parsers (MX, A, AAAA); statuses agree with the records, names are clean.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/base/log.hpp"
#include "common/event/resolver_answer.hpp"

using namespace ferry::dns;

namespace {

// The question's name when it is written plainly, so mutated answers still match their question.
std::string question_name(std::string_view p) {
    std::string name;
    size_t off = 12;
    while (off < p.size() && p[off] != 0 && off < 12 + 255) {
        size_t len = static_cast<unsigned char>(p[off]);
        if (len > 63 || off + 1 + len > p.size()) return "a.example";
        if (!name.empty()) name += '.';
        name.append(p.substr(off + 1, len));
        off += 1 + len;
    }
    return name.empty() ? "a.example" : name;
}

bool clean(const std::string& name) {
    for (char c : name)
        if (std::isupper(static_cast<unsigned char>(c))) return false;
    return name.empty() || name.back() != '.';
}

void check_mx(std::string_view in, const std::string& qname) {
    MxParse r = parse_mx_answer(in, qname);
    if (r.answer.status != Status::ok && (!r.answer.records.empty() || r.answer.error.empty())) abort();
    if (!r.follow.empty() && (!r.answer.records.empty() || !clean(r.follow))) abort();
    for (const auto& mx : r.answer.records) {
        if (!clean(mx.exchange)) abort();
        if (!mx.exchange.empty() && (!valid_query_name(mx.exchange) || !numeric_address(mx.exchange).empty())) abort();
    }
    MxParse again = parse_mx_answer(in, qname);
    if (again.answer.status != r.answer.status || again.answer.records.size() != r.answer.records.size()) abort();
}

void check_addresses(std::string_view in, const std::string& qname, bool ipv6) {
    AddressParse r = parse_address_answer(in, qname, ipv6);
    if (r.answer.status != Status::ok && (!r.answer.addresses.empty() || r.answer.error.empty())) abort();
    if (!r.follow.empty() && !r.answer.addresses.empty()) abort();
    for (const auto& a : r.answer.addresses) {
        if (numeric_address(a) != a) abort();
        if (ipv6 != (a.find(':') != std::string::npos)) abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static bool quiet = (ferry::log::init("fuzz-dns-answer", "stderr", "error"), true);
    (void)quiet;
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string qname = question_name(in);
    check_mx(in, qname);
    check_addresses(in, qname, false);
    check_addresses(in, qname, true);
    std::string norm = normalize_name(in.substr(0, 300));
    if (valid_query_name(norm) && norm.size() > 253) abort();
    return 0;
}
