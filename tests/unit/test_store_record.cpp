// Unit tests of the mailbox index records: framing, every type both ways, torn and damaged records.
#include <catch.hpp>

#include <string>
#include <vector>

#include "common/store/index_record.hpp"

using namespace ferry::store;

namespace {

std::vector<Record> samples() {
    std::vector<Record> out;
    Record h;
    h.type = RecordType::header;
    h.uidvalidity = 1700000000;
    h.uidnext = 7;
    h.highest_modseq = 9;
    out.push_back(h);
    Record k;
    k.type = RecordType::keyword;
    k.keyword_id = 3;
    k.key = "$Junk label";
    out.push_back(k);
    Record a;
    a.type = RecordType::append;
    a.uid = 6;
    a.modseq = 9;
    a.uidnext = 7;
    a.highest_modseq = 9;
    a.base = "1700000000.M1P2Q3.host";
    a.flags = "FS";
    a.keywords = {0, 3};
    out.push_back(a);
    Record f = a;
    f.type = RecordType::flags;
    f.base.clear();
    f.flags.clear();
    f.keywords.clear();
    out.push_back(f);
    Record x;
    x.type = RecordType::expunge;
    x.uid = 2;
    x.modseq = 4;
    x.uidnext = 7;
    x.highest_modseq = 9;
    out.push_back(x);
    Record c;
    c.type = RecordType::cache;
    c.uid = 6;
    c.key = "envelope";
    c.value = std::string("(\"Mon, 1 Jan\" NIL)\r\n\0%-", 24);
    out.push_back(c);
    return out;
}

void same(const Record& a, const Record& b) {
    CHECK(a.type == b.type);
    CHECK(a.uidnext == b.uidnext);
    CHECK(a.highest_modseq == b.highest_modseq);
    CHECK(a.uid == b.uid);
    CHECK(a.modseq == b.modseq);
    CHECK(a.base == b.base);
    CHECK(a.flags == b.flags);
    CHECK(a.keywords == b.keywords);
    CHECK(a.key == b.key);
    CHECK(a.value == b.value);
    if (a.type == RecordType::header) CHECK(a.uidvalidity == b.uidvalidity);
}

// A frame with a correct length and checksum around any payload.
std::string frame(const std::string& payload) {
    char head[32];
    std::snprintf(head, sizeof head, "%08x %08x ", static_cast<unsigned>(payload.size()), crc32(payload));
    return head + payload + "\n";
}

}  // namespace

TEST_CASE("store record: every type encodes and decodes to itself", "[store]") {
    for (const auto& r : samples()) {
        std::string line = encode(r);
        CHECK(line.back() == '\n');
        CHECK(line.find('\n') == line.size() - 1);  // '\n' ends a record and nothing else
        auto d = decode(line);
        REQUIRE(d.status == Decoded::ok);
        CHECK(d.used == line.size());
        same(d.record, r);
    }
}

TEST_CASE("store record: CRC-32 is the IEEE one", "[store]") {
    CHECK(crc32("123456789") == 0xCBF43926u);
    CHECK(crc32("") == 0);
    // Longer than one 8-byte step, with a tail: the sliced loop and the byte loop agree.
    CHECK(crc32("The quick brown fox jumps over the lazy dog") == 0x414FA339u);
    CHECK(crc32("The quick brown fox jumps over the lazy dog.") == 0x519025E9u);
}

TEST_CASE("store record: tokens escape space, percent, controls and the lone dash", "[store]") {
    struct Case {
        std::string in, out;
    } cases[] = {{"", "-"}, {"-", "%2D"}, {"a b", "a%20b"}, {"100%", "100%25"}, {"x\n", "x%0a"}, {"a-b", "a-b"}};
    for (const auto& c : cases) {
        CHECK(escape_token(c.in) == c.out);
        std::string back;
        CHECK(unescape_token(c.out, back));
        CHECK(back == c.in);
    }
    std::string out;
    for (const char* bad : {"%", "%2", "%zz", "a b", ""}) CHECK_FALSE(unescape_token(bad, out));
}

TEST_CASE("store record: every cut of a record is incomplete, never a record", "[store]") {
    for (const auto& r : samples()) {
        std::string line = encode(r);
        for (size_t cut = 0; cut < line.size(); ++cut) {
            auto d = decode(std::string_view(line).substr(0, cut));
            INFO("cut at " << cut);
            CHECK(d.status == Decoded::incomplete);
        }
    }
}

TEST_CASE("store record: a changed byte fails the checksum or the frame", "[store]") {
    std::string line = encode(samples()[2]);
    for (size_t i = 0; i + 1 < line.size(); ++i) {
        std::string bent = line;
        bent[i] ^= 0x01;
        auto d = decode(bent);
        INFO("byte " << i);
        CHECK(d.status != Decoded::ok);
    }
}

TEST_CASE("store record: records follow each other and decode in sequence", "[store]") {
    std::string all;
    for (const auto& r : samples()) all += encode(r);
    std::string_view rest(all);
    size_t n = 0;
    while (!rest.empty()) {
        auto d = decode(rest);
        REQUIRE(d.status == Decoded::ok);
        rest.remove_prefix(d.used);
        ++n;
    }
    CHECK(n == samples().size());
}

TEST_CASE("store record: well framed but wrong payloads are refused", "[store]") {
    const char* bad[] = {
        "Z 1 0",                                  // unknown type
        "H 1 0 1",                                // too few fields
        "H 1 0 1 5 extra",                        // leftovers
        "H 1 0 2 5",                              // a version this code does not know
        "H 1 0 1 0",                              // UIDVALIDITY 0
        "A 5 3 5 3 base - -",                     // UID not below UIDNEXT
        "A 6 3 5 4 base - -",                     // MODSEQ above HIGHESTMODSEQ
        "A 6 3 5 0 base - -",                     // MODSEQ 0
        "A 6 3 0 3 base - -",                     // UID 0
        "A 6 3 5 3 base SF -",                    // letters not sorted
        "A 6 3 5 3 base S1 -",                    // not a letter
        "A 6 3 5 3 base - 3,1",                   // keyword ids not ascending
        "A 6 3 5 3 base - 1000",                  // keyword id over the limit
        "A 6 03 5 3 base - -",                    // leading zero
        "X 6 3 5",                                // too few fields
        "C 6 3 5 - v",                            // empty cache key
        "K 6 3 1 -",                              // empty keyword
        "F 6 3 5 3 S - x",                        // leftovers
    };
    for (const char* p : bad) {
        INFO(p);
        CHECK(decode(frame(p)).status == Decoded::bad);
    }
    CHECK(decode(frame("A 6 3 5 3 base DS 0,2")).status == Decoded::ok);
    CHECK(decode("00000000 00000000 \n").status == Decoded::bad);        // empty payload
    CHECK(decode("0000000g 00000000 A\n").status == Decoded::bad);       // not hex
    CHECK(decode("00100000 00000000 " + std::string(20, 'x')).status == Decoded::bad);  // over the limit
}
