// Fuzz target: DKIM's tag-list, signature-field and key-record parsers, and the verifier over a message built from the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/verify/dkim.hpp"

using namespace ferry::verify::dkim;

// The input's first line is the key record every signature gets; all of it is also a signature
// value and a message, fed in slices of a size the input picks.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string_view first = in.substr(0, in.find('\n'));
    if (auto tags = parse_tag_list(in); tags && tags->size() > kMaxTags) abort();
    if (auto s = parse_signature(in)) {
        if (s->headers.size() > kMaxSignedFields || s->domain.empty() || s->selector.empty()) abort();
    }
    auto key = parse_key_record(first);
    (void)key;
    (void)decode_base64(in);

    Verifier v(1700000000);
    size_t step = size ? 1 + data[0] % 64 : 1;
    for (size_t i = 0; i < in.size(); i += step) v.feed(in.substr(i, step));
    v.finish();
    if (v.count() > kMaxSignatures) abort();
    for (size_t i = 0; i < v.count(); ++i) {
        if (!v.key_name(i).empty()) v.key_answer(i, {KeyAnswer::Status::ok, {std::string(first)}});
        if (!v.key_name(i).empty()) abort();  // every signature is decided once its key came
        (void)result_text(v.result(i));
    }
    return 0;
}
