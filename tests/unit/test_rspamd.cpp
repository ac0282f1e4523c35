// rspamd's /checkv2: the JSON reply reader with its limits, the HTTP reply around it, the request header.
#include <catch.hpp>

#include <string>

#include "common/verify/rspamd_reply.hpp"
#include "mta/smtpd/rspamd_client.hpp"

using namespace ferry::verify::spam;
using ferry::smtpd::http_reply_body;
using ferry::smtpd::RspamdEnvelope;
using ferry::smtpd::rspamd_request_head;

namespace {

std::string refusal(const std::string& json, const RspamdLimits& limits = {}) {
    std::string why;
    INFO(json);
    REQUIRE_FALSE(parse_rspamd_reply(json, &why, limits));
    return why;
}

}  // namespace

TEST_CASE("rspamd: a /checkv2 reply gives score, action and symbols", "[rspamd]") {
    auto r = parse_rspamd_reply(R"({"is_skipped":false,"score":7.25,"required_score":15.0,"action":"add header",
        "symbols":{"GTUBE":{"name":"GTUBE","score":0,"options":["a","b"]},"MIME_GOOD":{"name":"MIME_GOOD","score":-0.1,
        "metric_score":-0.1,"description":"Known content-type"}},"messages":{},"message-id":"x@y","time_real":0.5,
        "milter":{"add_headers":{"X-Spam":{"value":"Yes","order":0}}},"urls":[],"emails":null})");
    REQUIRE(r);
    CHECK(r->score == 7.25);
    CHECK(r->required_score == 15.0);
    CHECK(r->action == "add header");
    CHECK_FALSE(r->skipped);
    REQUIRE(r->symbols.size() == 2);
    CHECK(r->symbols[0].first == "GTUBE");
    CHECK(r->symbols[1].first == "MIME_GOOD");
    CHECK(r->symbols[1].second == -0.1);
}

TEST_CASE("rspamd: JSON strings, numbers and literals as RFC 8259 writes them", "[rspamd]") {
    auto r = parse_rspamd_reply(" {\"score\" : -1.5e1 , \"action\":\"r\\u00e9ject \\ud83d\\ude00\\t\\\"\\/\", "
                                "\"is_skipped\" : true, \"required_score\":0}\r\n");
    REQUIRE(r);
    CHECK(r->score == -15);
    CHECK(r->action == "r\xc3\xa9ject \xf0\x9f\x98\x80\t\"/");
    CHECK(r->skipped);
    // A lone surrogate is U+FFFD.
    CHECK(parse_rspamd_reply(R"({"score":0,"action":"\ud800x"})")->action == "\xef\xbf\xbdx");
}

TEST_CASE("rspamd: malformed replies are refused with a reason", "[rspamd]") {
    CHECK(refusal("") == "object expected at octet 0");
    CHECK(refusal(R"({"action":"reject"})") == "no \"score\"");
    CHECK(refusal(R"({"score":"7"})") == "number expected at octet 9");
    CHECK(refusal(R"({"score":7} x)") == "text after the reply");
    CHECK(!refusal(R"({"score":07})").empty());
    CHECK(!refusal(R"({"score":7.})").empty());
    CHECK(!refusal(R"({"score":+7})").empty());
    CHECK(!refusal(R"({"score":1e999})").empty());
    CHECK(!refusal(R"({"score":1,})").empty());
    CHECK(!refusal(R"({"score":1,"a":[1,]})").empty());
    CHECK(!refusal(R"({"score":1,"a":tru})").empty());
    CHECK(!refusal("{\"score\":1,\"a\":\"tab\there\"}").empty());  // a raw control character
    CHECK(!refusal(R"({"score":1,"a":"\x"})").empty());
    CHECK(!refusal(R"({"score":1,"a":"\u12g4"})").empty());
    CHECK(!refusal(R"({"score":1,"a":"open)").empty());
    CHECK(!refusal(R"([{"score":1}])").empty());
}

TEST_CASE("rspamd: the reader's limits", "[rspamd]") {
    RspamdLimits small;
    small.max_depth = 3;
    small.max_string = 8;
    small.max_symbols = 2;
    small.max_bytes = 200;
    CHECK(parse_rspamd_reply(R"({"score":1,"a":{"b":[1]}})", nullptr, small));
    CHECK(refusal(R"({"score":1,"a":{"b":[[1]]}})", small).rfind("nested too deep", 0) == 0);
    CHECK(refusal(R"({"score":1,"action":"123456789"})", small).rfind("string too long", 0) == 0);
    CHECK(refusal(std::string(201, ' '), small) == "reply too long");
    auto r = parse_rspamd_reply(R"({"score":1,"symbols":{"A":{"score":1},"B":{"score":2},"C":{"score":3}}})", nullptr, small);
    REQUIRE(r);
    CHECK(r->symbols.size() == 2);  // the rest are read, not kept
    // Deep nesting is refused, not recursed into without end.
    std::string deep = "{\"score\":1,\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
    CHECK(refusal(deep).rfind("nested too deep", 0) == 0);
}

TEST_CASE("rspamd: the HTTP reply around the JSON", "[rspamd]") {
    std::string why;
    CHECK(*http_reply_body("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}xyz", &why) == "{}xy");
    CHECK(*http_reply_body("HTTP/1.0 200 OK\r\nServer: rspamd\r\n\r\n{\"a\":1}", &why) == "{\"a\":1}");
    CHECK(*http_reply_body("HTTP/1.1 200 OK\r\ncontent-length:2\r\n\r\n{}", &why) == "{}");
    CHECK_FALSE(http_reply_body("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", &why));
    CHECK(why == "HTTP status \"500 Internal Server Error\"");
    CHECK_FALSE(http_reply_body("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}", &why));
    CHECK(why == "reply shorter than its Content-Length");
    CHECK_FALSE(http_reply_body("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n{}", &why));
    CHECK_FALSE(http_reply_body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", &why));
    CHECK_FALSE(http_reply_body("SPAMD/1.1 0 EX_OK\r\n\r\n", &why));
    CHECK_FALSE(http_reply_body("HTTP/1.1 200 OK\r\n", &why));
    CHECK(why == "no complete HTTP header");
}

TEST_CASE("rspamd: the request header names the envelope", "[rspamd]") {
    RspamdEnvelope e{"0123456789ABCDEF", "192.0.2.7", "client.example", "a@example.org", {"b@example.test", "c@example.test"}, ""};
    CHECK(rspamd_request_head("127.0.0.1:11333", e, 42) ==
          "POST /checkv2 HTTP/1.1\r\nHost: 127.0.0.1:11333\r\nContent-Length: 42\r\nConnection: close\r\n"
          "Queue-Id: 0123456789ABCDEF\r\nIP: 192.0.2.7\r\nHelo: client.example\r\nFrom: a@example.org\r\n"
          "Rcpt: b@example.test\r\nRcpt: c@example.test\r\n\r\n");
    e.sender = "";  // the null reverse-path: no From
    e.helo = "bad\r\nX-Injected: 1";
    e.user = "ann@example.test";
    std::string head = rspamd_request_head("/run/rspamd.sock", e, 1);
    CHECK(head.find("From:") == std::string::npos);
    CHECK(head.find("Helo:") == std::string::npos);
    CHECK(head.find("X-Injected") == std::string::npos);
    CHECK(head.find("Host: localhost\r\n") != std::string::npos);
    CHECK(head.find("User: ann@example.test\r\n") != std::string::npos);
}
