// Unit tests of ferry-mda's header pieces: Return-Path/Delivered-To, the queue id from Received, CRLF to LF.
#include <catch.hpp>

#include "mda/trace_headers.hpp"

using namespace ferry;

TEST_CASE("mda: delivery headers", "[mda]") {
    CHECK(mda::delivery_headers("a@b.test", "demo@example.test") ==
          "Return-Path: <a@b.test>\nDelivered-To: demo@example.test\n");
    CHECK(mda::delivery_headers("", "demo@example.test") == "Return-Path: <>\nDelivered-To: demo@example.test\n");
    // No value can add a header line of its own.
    CHECK(mda::delivery_headers("a\r\nX-Evil: 1", "d\ne") == "Return-Path: <a  X-Evil: 1>\nDelivered-To: d e\n");
}

TEST_CASE("mda: queue id from the topmost Received header", "[mda]") {
    struct Row {
        const char* message;
        const char* qid;
    };
    const Row rows[] = {
        {"Received: from c.test (c.test [127.0.0.1])\n\tby mx.test (ferry) with ESMTP id 0123456789ABCDEF;\n"
         "\tMon, 1 Jan 2024 00:00:00 +0000\nSubject: x\n\nbody\n",
         "0123456789ABCDEF"},
        {"Received: from a by b with ESMTP id ABC; date\nReceived: from c by d id DEF; date\n\n", "ABC"},
        {"Subject: x\nreceived: by mx id Q1.2_3-4\n\n", "Q1.2_3-4"},  // case-insensitive field name
        {"Subject: x\n\nReceived: by mx id BODY\n", ""},  // only the header section counts
        {"Received: by mx with ESMTP; date\nReceived: by older id OLD\n\n", ""},  // only the topmost one
        {"Received: by mx id\n\n", ""},
        {"Received: by mx id bad/id;\n\n", ""},
        {"Received: by mx ID upper\r\n\r\n", "upper"},
        {"X-Received: by mx id NOPE\n\n", ""},
        {"", ""},
    };
    for (const auto& r : rows) {
        INFO(r.message);
        CHECK(mda::queue_id_from_received(r.message) == r.qid);
    }
}

TEST_CASE("mda: queue id length limit", "[mda]") {
    std::string at_limit(mda::kMaxQueueIdLength, 'A');
    CHECK(mda::queue_id_from_received("Received: by x id " + at_limit + ";\n\n") == at_limit);
    CHECK(mda::queue_id_from_received("Received: by x id " + at_limit + "A;\n\n") == "");
}

TEST_CASE("mda: CRLF to LF for LDA input", "[mda]") {
    CHECK(mda::to_lf("a\r\nb\r\n") == "a\nb\n");
    CHECK(mda::to_lf("a\nb\n") == "a\nb\n");
    CHECK(mda::to_lf("a\rb\r") == "a\rb\r");  // a lone CR stays
    CHECK(mda::to_lf("\r\r\n") == "\r\n");
    CHECK(mda::to_lf("") == "");
}
