// Fuzz target: the MIME parser and its renderers and decoders; split feeding gives the same tree, every range lies inside the message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../unit/mime_util.hpp"
#include "common/mail/imap_body.hpp"
#include "common/mail/mime.hpp"
#include "common/mail/mime_decode.hpp"
#include "common/mail/mime_section.hpp"

using namespace ferry::mail;

namespace {

void check_ranges(const MimePart& p, uint64_t size) {
    if (p.header.offset + p.header.size > p.body.offset || p.body.offset + p.body.size > size) abort();
    if (p.body.size > p.body.crlf_size || p.header.size > p.header.crlf_size) abort();
    for (const auto& c : p.children) {
        if (c.header.offset < p.body.offset || c.depth != p.depth + 1) abort();
        check_ranges(c, size);
    }
}

void render(const MimePart& root, std::string_view in) {
    std::string out = imap_bodystructure(root) + imap_body(root) + imap_envelope(root);
    if (out.empty()) abort();
    auto section = parse_section(in.substr(0, 48));
    if (section) {
        auto range = resolve_section(root, *section);
        if (range && range->offset + range->size > in.size()) abort();
    }
    filter_header_fields(in, {"subject", "x"}, in.size() % 2 == 0);
}

void decode(std::string_view in) {
    std::string qp = decode_quoted_printable(in), b64 = decode_base64(in);
    std::string split;
    QpDecoder d;
    for (size_t pos = 0; pos < in.size(); pos += 3) d.feed(in.substr(pos, 3), split);
    d.finish(split);
    if (split != qp) abort();
    decode_header_value(in.substr(0, 1024));
    to_utf8("iso-8859-1", in);
    // A text contains its own beginning, whatever its bytes.
    if (!contains_ci(in, in.substr(0, 6))) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    MimePart whole = parse_mime(in);
    MimeParser parser;
    for (size_t pos = 0; pos < in.size();) {
        size_t n = 1 + (static_cast<unsigned char>(in[pos]) % 7);
        parser.feed(in.substr(pos, n));
        pos += n;
    }
    MimePart split = parser.finish();
    if (test::dump(whole) != test::dump(split)) abort();
    if (whole.header.offset != 0 || whole.header.size + whole.body.size != size) abort();
    check_ranges(whole, size);
    render(whole, in);
    MimeLimits tight{3, 8, 256, 64, 8};
    MimePart limited = parse_mime(in, tight);
    check_ranges(limited, size);
    render(limited, in);
    decode(in);
    return 0;
}
