// Unit tests of FETCH's pure pieces: the cached MessageInfo and its part layout, chunked CRLF conversion, partial windows.
#include <catch.hpp>

#include <random>
#include <string>

#include "common/mail/imap_body.hpp"
#include "common/mail/mime.hpp"
#include "common/mail/mime_section.hpp"
#include "imapd/fetch_cache.hpp"

using namespace ferry;
using namespace ferry::imap;

namespace {

const std::string kNested =
    "From: a@example.org\nSubject: nested\nContent-Type: multipart/mixed; boundary=outer\n\n"
    "--outer\nContent-Type: text/plain\n\nhello\n"
    "--outer\nContent-Type: message/rfc822\n\n"
    "Subject: inner\nContent-Type: multipart/alternative; boundary=in\n\n"
    "--in\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9\n"
    "--in\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQ=\n"
    "--in--\n"
    "--outer--\n";

std::string crlf_chunks(std::string_view in, size_t chunk) {
    CrlfConverter c;
    std::string out;
    for (size_t i = 0; i < in.size(); i += chunk) c.feed(in.substr(i, chunk), out);
    return out;
}

// Every LF without a CR right before it gets one, over the whole input at once.
std::string crlf_reference(std::string_view in) {
    std::string out;
    for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) out += '\r';
        out += in[i];
    }
    return out;
}

// The input fed in chunks of the given sizes in turn (the last size repeats).
std::string crlf_split(std::string_view in, const std::vector<size_t>& sizes) {
    CrlfConverter c;
    std::string out;
    for (size_t i = 0, k = 0; i < in.size(); k = std::min(k + 1, sizes.size() - 1)) {
        c.feed(in.substr(i, sizes[k]), out);
        i += sizes[k];
    }
    return out;
}

std::string range_of(const mail::MimePart& tree, const std::string& message, std::vector<uint32_t> part,
                     mail::Section::Text text) {
    auto r = mail::resolve_section(tree, mail::Section{std::move(part), text, {}});
    REQUIRE(r);
    return crlf_chunks(std::string_view(message).substr(r->offset, r->size), 7);
}

}  // namespace

TEST_CASE("fetch cache: a MessageInfo survives encoding and its layout answers sections", "[imap_fetch]") {
    mail::MimePart tree = mail::parse_mime(kNested);
    MessageInfo info = info_of(tree, 1795000000, kNested.size());
    auto back = decode_info(encode_info(info));
    REQUIRE(back);
    CHECK(back->internal_date == 1795000000);
    CHECK(back->size == kNested.size());
    CHECK(back->crlf_size == tree.header.crlf_size + tree.body.crlf_size);
    CHECK(back->envelope == mail::imap_envelope(tree));
    CHECK(back->bodystructure == info.bodystructure);
    CHECK(back->body == info.body);
    CHECK(encode_info(*back) == encode_info(info));

    using T = mail::Section::Text;
    struct Row {
        std::vector<uint32_t> part;
        T text;
    };
    const Row rows[] = {
        {{}, T::none}, {{}, T::header}, {{}, T::text}, {{1}, T::none}, {{1}, T::mime}, {{2}, T::header},
        {{2}, T::text}, {{2, 1}, T::none}, {{2, 2}, T::mime}, {{2, 2}, T::none},
    };
    for (const auto& row : rows) {
        CAPTURE(row.part, static_cast<int>(row.text));
        CHECK(range_of(back->layout, kNested, row.part, row.text) == range_of(tree, kNested, row.part, row.text));
    }
    CHECK(range_of(back->layout, kNested, {2, 1}, T::none) == "caf=C3=A9");
    const mail::MimePart* b64 = find_part(back->layout, {2, 2});
    REQUIRE(b64);
    CHECK(b64->transfer_encoding() == "base64");
    CHECK(b64->children.empty());
    CHECK(find_part(back->layout, {2})->is_message());
    CHECK(find_part(back->layout, {3}) == nullptr);
    CHECK(find_part(back->layout, {1, 1}) == nullptr);
}

TEST_CASE("fetch cache: damaged values are refused", "[imap_fetch]") {
    std::string good = encode_info(info_of(mail::parse_mime(kNested), 1, kNested.size()));
    CHECK(decode_info(good));
    CHECK_FALSE(decode_info(""));
    CHECK_FALSE(decode_info(good + "x"));
    CHECK_FALSE(decode_info(good.substr(0, good.size() - 1)));
    CHECK_FALSE(decode_info("1:x1:21:30:0:0:1:a"));
    for (size_t cut = 0; cut < good.size(); cut += 3) CHECK_FALSE(decode_info(good.substr(0, cut)));
}

TEST_CASE("fetch cache: a single-part message's part 1 is its body", "[imap_fetch]") {
    std::string msg = "Subject: x\nContent-Transfer-Encoding: x-uuencode\n\nbody\n";
    auto info = decode_info(encode_info(info_of(mail::parse_mime(msg), 0, msg.size())));
    REQUIRE(info);
    const mail::MimePart* p = find_part(info->layout, {1});
    REQUIRE(p);
    CHECK(p->transfer_encoding() == "x-uuencode");
    CHECK(info->crlf_size == msg.size() + 4);
}

TEST_CASE("fetch cache: CRLF conversion in chunks", "[imap_fetch]") {
    struct Row {
        const char* in;
        const char* out;
    };
    const Row rows[] = {
        {"a\nb\n", "a\r\nb\r\n"},
        {"a\r\nb\r\n", "a\r\nb\r\n"},        // CRLF stays
        {"no newline at the end", "no newline at the end"},
        {"x\ny", "x\r\ny"},                 // a last line without a line end gets none
        {"\n\n", "\r\n\r\n"},
        {"cr\ronly\n", "cr\ronly\r\n"},      // a lone CR is content
        {"", ""},
    };
    for (const auto& row : rows) {
        for (size_t chunk : {1, 2, 3, 64}) {
            CAPTURE(row.in, chunk);
            CHECK(crlf_chunks(row.in, chunk) == row.out);
        }
    }
    // A CR that ends one chunk and the LF that starts the next stay one line end.
    CrlfConverter c;
    std::string out;
    c.feed("abc\r", out);
    c.feed("\ndef\n", out);
    CHECK(out == "abc\r\ndef\r\n");
    // An LF starting a chunk after one that did not end in CR gets its CR.
    CrlfConverter d;
    out.clear();
    d.feed("abc", out);
    d.feed("\n", out);
    CHECK(out == "abc\r\n");
}

TEST_CASE("fetch cache: CRLF conversion across chunk and block boundaries", "[imap_fetch]") {
    const std::string line(70, 'x');
    const std::string long_text = [&] {
        std::string t;
        for (int i = 0; i < 300; ++i) t += line.substr(0, 40 + i % 37) + (i % 5 == 0 ? "\r\n" : "\n");
        return t;
    }();
    struct Row {
        std::string in;
        std::vector<size_t> sizes;  // chunk sizes in turn, the last repeating
    };
    const Row rows[] = {
        {std::string(31, 'a') + "\r\n" + line + "\n", {32, 64}},     // CR ends a chunk, LF starts the next
        {std::string(31, 'a') + "\r\n" + line + "\n", {1}},
        {std::string(31, 'a') + "\r\n" + line + "\n", {64}},         // CR and LF astride a 32-octet block
        {std::string(32, 'a') + "\n" + line + "\n", {32, 64}},       // an LF that starts a chunk, no CR before
        {std::string(32, 'a') + "\r" + line + "\r", {33, 64}},       // a lone CR ends a chunk and the input
        {std::string(63, '\n'), {64}},                               // LFs only
        {std::string(63, '\n'), {1}},
        {std::string(40, '\r') + std::string(40, '\n'), {40, 64}},    // CRs then LFs: only the first LF has a CR
        {std::string(100, '\r'), {7}},                               // no LF at all
        {line + line + line, {64}},                                  // no line end at all
        {"\n" + line + "\r\n\r\n" + line, {1, 2, 3, 64}},
        {long_text, {1}},
        {long_text, {31, 32, 33, 4096}},
        {long_text + long_text + long_text + long_text, {20000}},      // across the converter's 8 KiB slices
        {long_text + long_text + long_text + long_text, {8191, 8193, 8192}},
    };
    for (const auto& row : rows) {
        CAPTURE(row.in.size(), row.sizes);
        CHECK(crlf_split(row.in, row.sizes) == crlf_reference(row.in));
    }
}

TEST_CASE("fetch cache: CRLF conversion of generated input, whole, byte by byte and in chunks", "[imap_fetch]") {
    std::mt19937 rng(2026);  // fixed: every run the same inputs
    const char alphabet[] = {'a', 'b', ' ', '\r', '\n', 'a', 'a', 'a'};
    for (int n = 0; n < 300; ++n) {
        std::string in;
        size_t len = rng() % 400;
        for (size_t i = 0; i < len; ++i) in += alphabet[rng() % sizeof alphabet];
        std::string want = crlf_reference(in);
        CAPTURE(in);
        CHECK(crlf_split(in, {in.size() + 1}) == want);
        CHECK(crlf_split(in, {1}) == want);
        CHECK(crlf_split(in, {1 + rng() % 70}) == want);
        std::string room(2 * in.size(), '#');
        CrlfConverter c;
        CHECK(room.substr(0, c.convert(in, room.data())) == want);
    }
}

TEST_CASE("fetch cache: partial windows over chunks", "[imap_fetch]") {
    const std::string data = "0123456789abcdefghij";
    struct Row {
        uint64_t start, count;
        const char* out;
    };
    const Row rows[] = {{0, 5, "01234"}, {3, 4, "3456"}, {18, 10, "ij"}, {20, 5, ""}, {25, 1, ""}, {0, 100, "0123456789abcdefghij"}};
    for (const auto& row : rows) {
        for (size_t chunk : {1, 3, 7, 64}) {
            CAPTURE(row.start, row.count, chunk);
            PartialWindow w(row.start, row.count);
            std::string out;
            for (size_t i = 0; i < data.size(); i += chunk) out += w.take(std::string_view(data).substr(i, chunk));
            CHECK(out == row.out);
        }
    }
    PartialWindow w(2, 3);
    CHECK(w.take("abcd") == "cd");
    CHECK_FALSE(w.done());
    CHECK(w.take("efg") == "e");
    CHECK(w.done());
}
