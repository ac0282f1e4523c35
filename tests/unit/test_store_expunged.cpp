// Unit tests of the expunged-UID log (RFC 7162 VANISHED (EARLIER)): ranges, the bound, and compaction of the index.
#include <catch.hpp>

#include "common/store/expunge_log.hpp"
#include "common/store/index.hpp"
#include "common/store/maildir.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using namespace ferry::store;

TEST_CASE("expunge log: one batch of touching UIDs is one range, other expunges stay apart", "[store]") {
    ExpungeLog log;
    log.add(3, 10);
    log.add(4, 11);
    log.add(5, 12);   // 3:5 in one batch
    log.add(6, 14);   // touches 5 but a later command: its own range
    log.add(9, 15);
    log.add(8, 16);   // descending in one batch joins too
    REQUIRE(log.ranges() == std::vector<ExpungedRange>{{3, 5, 12}, {6, 6, 14}, {8, 9, 16}});
    CHECK(*log.since(0) == UidRanges{{3, 6}, {8, 9}});
    CHECK(*log.since(12) == UidRanges{{6, 6}, {8, 9}});
    CHECK(*log.since(14) == UidRanges{{8, 9}});
    CHECK(log.since(16)->empty());
}

TEST_CASE("expunge log: past the bound the oldest ranges are forgotten and a floor says so", "[store]") {
    ExpungeLog log(3);
    for (uint32_t i = 0; i < 5; ++i) log.add(10 * i + 1, 100 + 2 * i);  // apart in UID and MODSEQ
    REQUIRE(log.ranges().size() == 3);
    CHECK(log.floor() == 102);
    CHECK_FALSE(log.since(101).has_value());
    CHECK(*log.since(102) == UidRanges{{21, 21}, {31, 31}, {41, 41}});
    CHECK(*log.since(104) == UidRanges{{31, 31}, {41, 41}});
}

TEST_CASE("expunge log: merge_ranges joins overlapping and adjacent ranges", "[store]") {
    CHECK(merge_ranges({{5, 6}, {1, 2}, {3, 4}, {9, 12}, {10, 11}}) == UidRanges{{1, 6}, {9, 12}});
    CHECK(merge_ranges({}).empty());
    CHECK(merge_ranges({{4000000000u, 4294967295u}, {1, 1}}) == UidRanges{{1, 1}, {4000000000u, 4294967295u}});
}

TEST_CASE("store record: a V record round-trips and refuses a range past UIDNEXT", "[store]") {
    Record v;
    v.type = RecordType::vanished;
    v.uidnext = 10;
    v.highest_modseq = 20;
    v.uid = 2;
    v.uid_last = 5;
    v.modseq = 18;
    auto d = decode(encode(v));
    REQUIRE(d.status == Decoded::ok);
    CHECK(d.record.uid == 2);
    CHECK(d.record.uid_last == 5);
    CHECK(d.record.modseq == 18);
    v.uid_last = 10;
    CHECK(decode(encode(v)).status == Decoded::bad);
    v.uid = 0;
    v.uid_last = 0;  // the floor
    CHECK(decode(encode(v)).status == Decoded::ok);
}

TEST_CASE("store index: expunged UIDs and their MODSEQ survive compaction and reopening", "[store]") {
    test::TempDir dir;
    std::string md = dir.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    for (int i = 0; i < 6; ++i) REQUIRE(maildir::deliver(md, "Subject: x\n\nbody\n"));
    REQUIRE(ix->sync());
    REQUIRE(ix->messages().size() == 6);
    uint64_t before = ix->highest_modseq();
    std::vector<uint32_t> first{2, 3};
    REQUIRE(ix->expunge(first));
    uint64_t middle = ix->highest_modseq();
    std::vector<uint32_t> second{5};
    REQUIRE(ix->expunge(second));
    CHECK(*ix->expunged_since(before) == UidRanges{{2, 3}, {5, 5}});
    CHECK(*ix->expunged_since(middle) == UidRanges{{5, 5}});
    REQUIRE(ix->compact());
    CHECK(ix->records() < 12);
    CHECK(*ix->expunged_since(before) == UidRanges{{2, 3}, {5, 5}});
    auto again = Index::open(md);
    REQUIRE(again);
    CHECK(*again->expunged_since(before) == UidRanges{{2, 3}, {5, 5}});
    CHECK(*again->expunged_since(middle) == UidRanges{{5, 5}});
    CHECK(again->expunged_since(again->highest_modseq())->empty());
    CHECK(again->highest_modseq() == ix->highest_modseq());
}

TEST_CASE("store index: the \\Recent watermark goes to one claimer and survives compaction", "[store]") {
    test::TempDir dir;
    std::string md = dir.path + "/Maildir";
    auto a = Index::open(md);
    auto b = Index::open(md);
    REQUIRE(a);
    REQUIRE(b);
    for (int i = 0; i < 3; ++i) REQUIRE(maildir::deliver(md, "Subject: x\n\nbody\n"));
    REQUIRE(a->sync());
    CHECK(a->recent_upto() == 0);
    auto first = a->claim_recent();
    REQUIRE(first);
    CHECK(*first == 0);  // a sees UIDs 1..3 as recent
    auto second = b->claim_recent();
    REQUIRE(second);
    CHECK(*second == 3);  // b sees none
    CHECK(*a->claim_recent() == 3);
    REQUIRE(a->compact());
    auto again = Index::open(md);
    REQUIRE(again);
    CHECK(again->recent_upto() == 3);
    Record r;
    r.type = RecordType::recent;
    r.uidnext = 4;
    r.uid = 4;  // past UIDNEXT
    CHECK(decode(encode(r)).status == Decoded::bad);
}
