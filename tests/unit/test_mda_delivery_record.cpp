// Unit tests of ferry-mda's delivery record: lookup, torn records, restart, pruning, the lock and claims.
#include <catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "common/store/maildir.hpp"
#include "mda/delivery_record.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using mda::DeliveryRecord;

namespace {

using test::TempDir;

constexpr std::chrono::seconds kLifetime{6 * 86400};
constexpr time_t kNow = 1795780000;  // 2026-11-27 11:46:40 UTC

// A queue id as ferry-smtpd makes them, for time `t`.
std::string qid_at(time_t t, unsigned suffix = 0xABC) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%013llX%03X", static_cast<unsigned long long>(t) * 1000000ULL, suffix);
    return buf;
}

std::unique_ptr<DeliveryRecord> open_record(const std::string& dir, time_t now = kNow) {
    auto r = DeliveryRecord::open(dir, kLifetime, now);
    REQUIRE(r.ok());
    return std::move(r.value());
}

std::optional<DeliveryRecord::Entry> find(DeliveryRecord& rec, const std::string& qid, const std::string& account) {
    auto seg = rec.segment_of(qid, kNow);
    REQUIRE(seg);
    auto r = rec.lookup(*seg, qid, account);
    REQUIRE(r.ok());
    return *r;
}

void intend(DeliveryRecord& rec, const std::string& qid, const std::string& account, const std::string& base) {
    DeliveryRecord::Intent items[] = {{account, base}};
    REQUIRE(rec.intend(*rec.segment_of(qid, kNow), qid, items, kNow).ok());
}

void append_raw(const std::string& path, const std::string& bytes) {
    FILE* f = std::fopen(path.c_str(), "ab");
    REQUIRE(f);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
}

}  // namespace

TEST_CASE("delivery record: a line encodes and decodes, and any damage is refused", "[mda][record]") {
    mda::RecordLine r{DeliveryRecord::State::intent, "66141081F8479626", "a b%@example.test", "1795781797.M1P2Q1.mx"};
    std::string line = mda::encode_record(r);
    CHECK(line.find("a%20b%25@example.test") != std::string::npos);
    auto back = mda::decode_record(line);
    REQUIRE(back);
    CHECK(back->account == r.account);
    CHECK(back->qid == r.qid);
    CHECK(back->base == r.base);
    CHECK(back->state == DeliveryRecord::State::intent);
    for (size_t cut = 0; cut < line.size(); ++cut) CHECK_FALSE(mda::decode_record(line.substr(0, cut)));
    std::string flipped = line;
    flipped[10] ^= 1;
    CHECK_FALSE(mda::decode_record(flipped));
    CHECK_FALSE(mda::decode_record("FR1 done a b c 00000000"));
}

TEST_CASE("delivery record: only ferry's queue ids within the lifetime are recorded", "[mda][record]") {
    TempDir dir;
    auto rec = open_record(dir.path);
    CHECK(rec->segment_of(qid_at(kNow), kNow) == kNow / 3600);
    CHECK(rec->segment_of(qid_at(kNow - 3 * 86400), kNow) == (kNow - 3 * 86400) / 3600);
    CHECK_FALSE(rec->segment_of(qid_at(kNow - 7 * 86400), kNow));  // older than the lifetime
    CHECK_FALSE(rec->segment_of(qid_at(kNow + 2 * 86400), kNow));  // far in the future
    CHECK_FALSE(rec->segment_of("0123456789ABCDEF", kNow));         // 1980
    CHECK_FALSE(rec->segment_of("66141081f8479626", kNow));         // not ferry's spelling
    CHECK_FALSE(rec->segment_of("4XyZ1234", kNow));                 // Postfix's
    CHECK(DeliveryRecord::segment_name(kNow / 3600) == "2026112711.rec");
}

TEST_CASE("delivery record: intent, then done, per (queue id, account) pair", "[mda][record]") {
    TempDir dir;
    auto rec = open_record(dir.path);
    std::string q1 = qid_at(kNow - 100), q2 = qid_at(kNow - 100, 0x123);
    CHECK_FALSE(find(*rec, q1, "a@example.test"));
    DeliveryRecord::Intent items[] = {{"a@example.test", "base-a"}, {"b@example.test", "base-b"}};
    REQUIRE(rec->intend(*rec->segment_of(q1, kNow), q1, items, kNow).ok());
    auto a = find(*rec, q1, "a@example.test");
    REQUIRE(a);
    CHECK(a->state == DeliveryRecord::State::intent);
    CHECK(a->base == "base-a");
    REQUIRE(rec->done(*rec->segment_of(q1, kNow), q1, "a@example.test", "base-a").ok());
    CHECK(find(*rec, q1, "a@example.test")->state == DeliveryRecord::State::done);
    CHECK(find(*rec, q1, "b@example.test")->state == DeliveryRecord::State::intent);
    CHECK_FALSE(find(*rec, q2, "a@example.test"));  // same hour, another message
    CHECK_FALSE(find(*rec, q1, "c@example.test"));
}

TEST_CASE("delivery record: transactions' intents written together share their fdatasyncs", "[mda][record]") {
    TempDir dir;
    auto rec = open_record(dir.path);
    // Written, not waited for: already seen by a lookup, in two segments (two hours).
    std::vector<DeliveryRecord::Pending> pending;
    std::vector<std::string> qids;
    for (int i = 0; i < 40; ++i) {
        std::string q = qid_at(kNow - 100 - (i % 2) * 3600, 0x100 + i);
        DeliveryRecord::Intent items[] = {{"a@example.test", "base-" + std::to_string(i)}};
        auto p = rec->write_intents(*rec->segment_of(q, kNow), q, items, kNow);
        REQUIRE(p.ok());
        pending.push_back(std::move(p.value()));
        qids.push_back(q);
        CHECK(find(*rec, q, "a@example.test")->base == "base-" + std::to_string(i));
    }
    // Waited for from many threads at once: each answered ok, by fewer fdatasync rounds than requests.
    std::vector<std::thread> waiters;
    std::atomic<int> failed{0};
    for (auto& p : pending)
        waiters.emplace_back([&rec, &failed, &p] {
            if (!rec->wait(p)) ++failed;
        });
    for (auto& t : waiters) t.join();
    CHECK(failed == 0);
    CHECK(rec->syncs() >= 1);
    CHECK(rec->syncs() <= pending.size());
    CHECK(rec->wait(DeliveryRecord::Pending{}).ok());  // nothing written: nothing to wait for
    // On disk for a new process: every record of both segments.
    rec.reset();
    auto again = open_record(dir.path);
    for (size_t i = 0; i < qids.size(); ++i)
        CHECK(find(*again, qids[i], "a@example.test")->base == "base-" + std::to_string(i));
}

TEST_CASE("delivery record: records survive a restart and the index is rebuilt", "[mda][record]") {
    TempDir dir;
    std::string q = qid_at(kNow - 7200);
    {
        auto rec = open_record(dir.path);
        intend(*rec, q, "a@example.test", "base-a");
        intend(*rec, q, "b@example.test", "base-b");
        REQUIRE(rec->done(*rec->segment_of(q, kNow), q, "b@example.test", "base-b").ok());
    }
    auto rec = open_record(dir.path);
    CHECK(find(*rec, q, "a@example.test")->state == DeliveryRecord::State::intent);
    CHECK(find(*rec, q, "b@example.test")->state == DeliveryRecord::State::done);
    // A later intent (the copy of a crashed attempt was never linked) replaces the earlier one.
    intend(*rec, q, "a@example.test", "base-a2");
    CHECK(find(*rec, q, "a@example.test")->base == "base-a2");
}

TEST_CASE("delivery record: a torn record is skipped and the next one starts on its own line", "[mda][record]") {
    TempDir dir;
    std::string q = qid_at(kNow - 60);
    std::string path = dir.path + "/" + DeliveryRecord::segment_name(*open_record(dir.path)->segment_of(q, kNow));
    {
        auto rec = open_record(dir.path);
        intend(*rec, q, "a@example.test", "base-a");
    }
    std::string torn = mda::encode_record({DeliveryRecord::State::done, q, "a@example.test", "base-a"});
    append_raw(path, torn.substr(0, torn.size() - 5));  // SIGKILL in the middle of the write
    {
        auto rec = open_record(dir.path);
        CHECK(find(*rec, q, "a@example.test")->state == DeliveryRecord::State::intent);
        intend(*rec, q, "b@example.test", "base-b");
    }
    // Zeros a power loss left, then a valid record on the same line: the record still counts.
    append_raw(path, std::string(16, '\0') + mda::encode_record({DeliveryRecord::State::done, q, "c@example.test", "base-c"}) + "\n");
    auto rec = open_record(dir.path);
    CHECK(find(*rec, q, "a@example.test")->state == DeliveryRecord::State::intent);
    CHECK(find(*rec, q, "b@example.test")->base == "base-b");
    CHECK(find(*rec, q, "c@example.test")->state == DeliveryRecord::State::done);
    std::string text = test::read_text(path);
    CHECK(text.find(torn.substr(0, torn.size() - 5) + "\n") != std::string::npos);
}

TEST_CASE("delivery record: segments older than the lifetime are deleted, others kept", "[mda][record]") {
    TempDir dir;
    std::string old_q = qid_at(kNow - 5 * 86400 - 3600), new_q = qid_at(kNow - 60);
    {
        auto rec = open_record(dir.path);
        intend(*rec, old_q, "a@example.test", "base-old");
        intend(*rec, new_q, "a@example.test", "base-new");
    }
    std::string old_path = dir.path + "/" + DeliveryRecord::segment_name((kNow - 5 * 86400 - 3600) / 3600);
    REQUIRE(access(old_path.c_str(), F_OK) == 0);
    // A day and a half later the old segment's hour ended more than 6 days ago.
    auto rec = open_record(dir.path, kNow + 36 * 3600);
    CHECK(access(old_path.c_str(), F_OK) != 0);
    CHECK(find(*rec, new_q, "a@example.test")->base == "base-new");
    CHECK(rec->prune(kNow + 36 * 3600) == 0);
}

TEST_CASE("delivery record: many segments, more than the cache holds, all answer", "[mda][record]") {
    TempDir dir;
    auto rec = open_record(dir.path);
    for (int h = 0; h < 10; ++h) intend(*rec, qid_at(kNow - h * 3600), "a@example.test", "base-" + std::to_string(h));
    for (int h = 9; h >= 0; --h) CHECK(find(*rec, qid_at(kNow - h * 3600), "a@example.test")->base == "base-" + std::to_string(h));
}

TEST_CASE("delivery record: one process at a time, and one transaction per pair", "[mda][record]") {
    TempDir dir;
    auto rec = open_record(dir.path);
    // flock locks belong to the open file description: a second open in this process conflicts too.
    auto second = DeliveryRecord::open(dir.path, kLifetime, kNow);
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().what().find("another ferry-mda holds the lock") != std::string::npos);
    std::string q = qid_at(kNow);
    {
        auto c1 = rec->claim(q, "a@example.test");
        CHECK(c1.held());
        CHECK_FALSE(rec->claim(q, "a@example.test").held());
        CHECK(rec->claim(q, "b@example.test").held());
    }
    CHECK(rec->claim(q, "a@example.test").held());
}

TEST_CASE("maildir: find_base finds a name by its base in new/ or cur/", "[mda][record]") {
    TempDir dir;
    std::string md = dir.path + "/Maildir";
    auto name = maildir::deliver(md, "Subject: x\n\nbody\n", "mx.test");
    REQUIRE(name.ok());
    std::string base = name->substr(0, name->find(','));
    auto found = maildir::find_base(md, base);
    REQUIRE(found.ok());
    CHECK(*found == "new/" + *name);
    REQUIRE(rename((md + "/new/" + *name).c_str(), (md + "/cur/" + *name + ":2,S").c_str()) == 0);
    CHECK(*maildir::find_base(md, base).value() == "cur/" + *name + ":2,S");
    CHECK_FALSE(maildir::find_base(md, base.substr(0, base.size() - 1)).value());  // a prefix is not the base
}

TEST_CASE("delivery record: sends of a pair are recorded apart from its intent and done", "[mda][record]") {
    TempDir dir;
    std::string q = qid_at(kNow - 60);
    int64_t seg = 0;
    {
        auto rec = open_record(dir.path);
        seg = *rec->segment_of(q, kNow);
        intend(*rec, q, "a@example.test", "base-a");
        auto none = rec->send_outcome(seg, q, "a@example.test", "redirect:x@example.net");
        REQUIRE(none.ok());
        CHECK_FALSE(*none);
        REQUIRE(rec->sent(seg, q, "a@example.test", "redirect:x@example.net", true).ok());
        REQUIRE(rec->sent(seg, q, "a@example.test", "redirect:y z@example.net", false).ok());
        // The pair's own record is still the intent: a send never stands for it.
        CHECK(find(*rec, q, "a@example.test")->state == DeliveryRecord::State::intent);
        CHECK(find(*rec, q, "a@example.test")->base == "base-a");
        CHECK(**rec->send_outcome(seg, q, "a@example.test", "redirect:x@example.net") == true);
        CHECK(**rec->send_outcome(seg, q, "a@example.test", "redirect:y z@example.net") == false);
        CHECK_FALSE(*rec->send_outcome(seg, q, "b@example.test", "redirect:x@example.net"));
        CHECK_FALSE(*rec->send_outcome(seg, q, "a@example.test", "vacation:h"));
    }
    // After a restart the index is rebuilt from the file with the same answers.
    auto rec = open_record(dir.path);
    CHECK(**rec->send_outcome(seg, q, "a@example.test", "redirect:x@example.net") == true);
    CHECK(**rec->send_outcome(seg, q, "a@example.test", "redirect:y z@example.net") == false);
    CHECK(find(*rec, q, "a@example.test")->state == DeliveryRecord::State::intent);
    REQUIRE(rec->done(seg, q, "a@example.test", "base-a").ok());
    CHECK(find(*rec, q, "a@example.test")->state == DeliveryRecord::State::done);
    auto line = mda::decode_record(mda::encode_record({DeliveryRecord::State::unsent, q, "a@example.test", "redirect:b"}));
    REQUIRE(line);
    CHECK(line->state == DeliveryRecord::State::unsent);
    CHECK(line->is_send());
}
