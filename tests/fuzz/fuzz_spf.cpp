// Fuzz target: the SPF record parser, macro expansion and check_host() over a zone built from the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/verify/spf.hpp"

using namespace ferry::verify::spf;

namespace {

// The input's lines are TXT records: the first is every domain's record, the others answer
// their own names ("name=text"); every A/AAAA/MX/PTR query gets one answer derived from its name.
Answer answer_for(const Query& q, std::string_view in) {
    size_t h = std::hash<std::string>()(q.name) ^ static_cast<size_t>(q.type);
    switch (q.type) {
        case QueryType::txt: {
            std::string_view first = in.substr(0, in.find('\n'));
            Answer a{DnsStatus::ok, {std::string(first)}};
            if (h % 7 == 0) a.records.push_back("v=spf1 -all");  // sometimes two records
            if (h % 11 == 0) return Answer{DnsStatus::error, {}};
            if (h % 13 == 0) return Answer{DnsStatus::nxdomain, {}};
            return a;
        }
        case QueryType::a: return h % 3 ? Answer{DnsStatus::ok, {"192.0.2." + std::to_string(h % 256)}} : Answer{DnsStatus::nodata, {}};
        case QueryType::aaaa: return Answer{DnsStatus::ok, {"2001:db8::" + std::to_string(h % 9)}};
        case QueryType::mx: return Answer{DnsStatus::ok, {"mx" + std::to_string(h % 5) + ".example", ""}};
        case QueryType::ptr: return Answer{DnsStatus::ok, {"host" + std::to_string(h % 3) + ".example"}};
    }
    return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto rec = parse_record(in.substr(0, in.find('\n')));
    if (rec && rec->terms.size() > kMaxTerms) abort();

    MacroValues v{"user@example.com", "user", "example.com", "example.com", "helo.example", "mx.example", "", "", "", false, 0};
    v.ip = "1.2.0.192";
    v.ip_text = "192.0.2.1";
    for (bool exp : {false, true}) {
        auto e = expand(in, v, exp);
        if (e && e->size() > kMaxExpansion + 128) abort();
        bool valid = valid_macro_string(in, exp);
        if (e && !valid) abort();
        if (!e && valid && in.size() <= 200) abort();  // only an over-long expansion fails on valid syntax
    }

    for (const char* ip : {"192.0.2.1", "2001:db8::1"}) {
        Check c(Request{ip, "user@example.com", "helo.example", "mx.example", 0});
        // Every query is asked once, and a check makes few: the limits bound it.
        for (size_t steps = 0;; ++steps) {
            auto s = c.step();
            if (std::holds_alternative<Verdict>(s)) break;
            if (steps > 400) abort();
            const Query& q = std::get<Query>(s);
            c.answer(q, answer_for(q, in));
        }
    }
    return 0;
}
