// The spam rule file parser, the score of a message (header and decoded body rules, GTUBE, SPF and DNS list facts), the X-Spam fields, clamd replies.
#include <catch.hpp>

#include <string>

#include "common/verify/spam_score.hpp"
#include "mta/smtpd/clamd_check.hpp"
#include "common/verify/forged_fields.hpp"
#include "mta/smtpd/spam_check.hpp"
#include "mta/smtpd/spamd_client.hpp"

using namespace ferry::verify::spam;

namespace {

RuleSet rules_of(const std::string& text) {
    auto r = parse_rules(text, builtin_rules());
    INFO(text);
    REQUIRE(r);
    return std::move(r.value());
}

std::string error_of(const std::string& text, const RuleLimits& limits = {}) {
    auto r = parse_rules(text, builtin_rules(), limits);
    REQUIRE_FALSE(r);
    return r.error().what();
}

std::string tests_of(const Report& r) {
    std::string s;
    for (const auto& t : r.tests) s += (s.empty() ? "" : ",") + t;
    return s;
}

const std::string kGtubeText(kGtube);

}  // namespace

TEST_CASE("spam: GTUBE in the body scores 1000 with the built-in rules", "[spam]") {
    std::string msg = "From: a@b.example\nSubject: test\n\nThis is spam:\n" + kGtubeText + "\n";
    Report r = score(builtin_rules(), msg, {});
    CHECK(r.score == 1000);
    CHECK(tests_of(r) == "GTUBE");
    CHECK(status_value(r, 5.0) == "Yes, score=1000.0 required=5.0 tests=GTUBE");
    Report clean = score(builtin_rules(), "Subject: hello\n\nJust a note.\n", {});
    CHECK(clean.score == 0);
    CHECK(status_value(clean, 5.0) == "No, score=0.0 required=5.0 tests=none");
}

TEST_CASE("spam: GTUBE is found in a base64 text part and in quoted-printable, not in the header alone", "[spam]") {
    std::string b64 =
        "Content-Type: multipart/mixed; boundary=XX\n\n--XX\nContent-Type: text/plain\n\nhello\n--XX\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        "WEpTKkM0SkRCUUFETjEuTlNCTjMqMklETkVOKkdUVUJFLVNUQU5EQVJELUFOVEktVUJFLVRFU1QtRU1BSUwqQy4zNFg=\n--XX--\n";
    CHECK(tests_of(score(builtin_rules(), b64, {})) == "GTUBE");
    std::string qp = "Content-Transfer-Encoding: quoted-printable\n\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-=\nUBE-TEST-EMAIL*C.34X\n";
    CHECK(tests_of(score(builtin_rules(), qp, {})) == "GTUBE");
    CHECK(score(builtin_rules(), "Subject: " + kGtubeText + "\n\nbody\n", {}).score == 0);
    // An attachment is not text: it is not read.
    std::string att = "Content-Type: application/octet-stream\n\n" + kGtubeText + "\n";
    CHECK(score(builtin_rules(), att, {}).score == 0);
}

TEST_CASE("spam: text past the byte limit is not read", "[spam]") {
    std::string msg = "Subject: x\n\n" + std::string(5000, 'a') + "\n" + kGtubeText + "\n";
    CHECK(score(builtin_rules(), msg, {}, {4096}).score == 0);
    CHECK(score(builtin_rules(), msg, {}, {8192}).score == 1000);
}

TEST_CASE("spam: header and body rules of a rule file, regex and substring", "[spam]") {
    RuleSet set = rules_of(
        "# a comment\n"
        "\n"
        "header SUBJ_VIAGRA  Subject  3.5  /v[i1]agra/i\n"
        "header FROM_BAD     From     1    spammer.example\n"
        "body   BODY_MONEY   2.0      /\\$[0-9]+ million/\n"
        "body   BODY_WIN     -0.5     you have WON\n"
        "score  GTUBE 500\n"
        "score  SPF_FAIL 4\n");
    REQUIRE(set.rules.size() == 5);
    std::string msg = "From: Bad <x@Spammer.Example>\nSubject: =?utf-8?q?cheap_V1AGRA?=\n\n"
                      "You have won $10 million\n";
    Report r = score(set, msg, {});
    CHECK(tests_of(r) == "SUBJ_VIAGRA,FROM_BAD,BODY_MONEY,BODY_WIN");
    CHECK(r.score == Approx(6.0));
    CHECK(score(set, kGtubeText, {}).score == 0);  // no blank line: all header, nothing in the body
    CHECK(score(set, "\n" + kGtubeText, {}).score == 500);
    Facts f;
    f.spf = "fail";
    f.lists.push_back({"DNSBL_zen.example", 3.5});
    Report facts = score(set, "Subject: a\n\nb\n", f);
    CHECK(tests_of(facts) == "SPF_FAIL,DNSBL_zen.example");
    CHECK(facts.score == Approx(7.5));
    f.spf = "softfail";
    f.lists = {{"DNSWL_wl.example", -2}};
    CHECK(score(builtin_rules(), "Subject: a\n\nb\n", f).score == Approx(-1.0));
}

TEST_CASE("spam: rule file errors name their line", "[spam]") {
    CHECK(error_of("body A 1 x\nbogus line\n") == "line 2: unknown line \"bogus\" (header, body, score)");
    CHECK(error_of("body A 1 x\nbody A 2 y\n") == "line 2: rule A is defined twice");
    CHECK(error_of("body GTUBE 1 x\n") == "line 1: rule GTUBE is defined twice");
    CHECK(error_of("body A one x\n") == "line 1: bad score \"one\"");
    CHECK(error_of("body A 1e3 x\n") == "line 1: bad score \"1e3\"");
    CHECK(error_of("body A-B 1 x\n") == "line 1: bad rule name \"A-B\" (letters, digits, _)");
    CHECK(error_of("header A Sub:ject 1 x\n") == "line 1: bad header field name \"Sub:ject\"");
    CHECK(error_of("body A 1\n") == "line 1: rule A has nothing to match");
    CHECK(error_of("body A 1 //\n") == "line 1: rule A has an empty regex");
    CHECK(error_of("\n\nbody A 1 /(unclosed/\n").rfind("line 3: rule A: bad regex: ", 0) == 0);
    CHECK(error_of("score NOPE 1\n") == "line 1: no rule named \"NOPE\" before this line");
    CHECK(error_of("score GTUBE 1 extra\n") == "line 1: text after the score");
    CHECK(error_of("body A 99999 x\n") == "line 1: bad score \"99999\"");
}

TEST_CASE("spam: rule file limits", "[spam]") {
    RuleLimits l;
    l.max_rules = 3;  // GTUBE and two more
    CHECK(error_of("body A 1 a\nbody B 1 b\nbody C 1 c\n", l) == "line 3: more than 3 rules");
    l = {};
    l.max_pattern = 8;
    CHECK(rules_of("body A 1 12345678\n").rules.size() == 2);
    CHECK(error_of("body A 1 123456789\n", l) == "line 1: rule A: pattern longer than 8");
    CHECK(error_of("body A 1 /123456789/\n", l) == "line 1: rule A: regex longer than 8");
    l = {};
    l.max_line = 20;
    CHECK(error_of("# " + std::string(30, 'x') + "\n", l) == "line 1: longer than 20 octets");
    l = {};
    l.max_file = 10;
    CHECK(error_of(std::string(11, '#'), l) == "larger than 10 octets");
    // A repetition that would need more states than libstdc++ allows is refused, not built.
    CHECK(error_of("body A 1 /((a{1000}){1000}){1000}/\n").rfind("line 1: rule A: bad regex", 0) == 0);
    // A count the regex compiler itself would overflow on (found by the fuzzer) never reaches it.
    const std::string too_big = "line 1: rule A: regex count over 9999 (a repetition or back-reference)";
    CHECK(error_of("body A 1 /a{999999999999999999}/\n") == too_big);
    CHECK(error_of("body A 1 /a{1,99999}/\n") == too_big);
    CHECK(error_of("body A 1 /\\9223372036854775808$[0-9]+/\n") == too_big);  // a back-reference
    CHECK(error_of("body A 1 /(a)\\10000/\n") == too_big);
    // An escaped backslash before digits is no back-reference; an escaped '{' no repetition.
    CHECK(parse_rules("body A 1 /a\\\\99999/\n", builtin_rules(), {}));
    CHECK(parse_rules("body A 1 /a\\{99999}/\n", builtin_rules(), {}));
}

TEST_CASE("spam: a regex over a very long line runs on bounded pieces", "[spam]") {
    RuleSet set = rules_of("body LONG 1 /(a|b)*c/\n");
    std::string msg = "Subject: x\n\n" + std::string(30000, 'a') + "c\n";
    Report r = score(set, msg, {}, {1024 * 1024, 1024});
    CHECK(tests_of(r) == "LONG");
}

TEST_CASE("spam: scores are printed with one decimal", "[spam]") {
    CHECK(format_score(1000) == "1000.0");
    CHECK(format_score(-2) == "-2.0");
    CHECK(format_score(3.45) == "3.5");
    CHECK(format_score(-0.01) == "0.0");
}

TEST_CASE("spam: DNS list names and the spam_dnsbl_zones syntax", "[spam]") {
    using ferry::smtpd::parse_dns_lists;
    using ferry::smtpd::reversed_ip;
    CHECK(reversed_ip("192.0.2.99") == "99.2.0.192");
    CHECK(reversed_ip("::ffff:127.0.0.2") == "2.0.0.127");
    CHECK(reversed_ip("2001:db8:1:2:3:4:567:89ab") ==
          "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2");
    CHECK(reversed_ip("not an address") == "");
    auto l = parse_dns_lists({"zen.example:3.5", "list.dnswl.example.:-2"});
    REQUIRE(l);
    REQUIRE(l->size() == 2);
    CHECK(l.value()[0].zone == "zen.example");
    CHECK(l.value()[0].weight == 3.5);
    CHECK(l.value()[1].zone == "list.dnswl.example");
    CHECK(l.value()[1].weight == -2);
    for (const char* bad : {"zen.example", ":3", "zen.example:x", "a b:1", "zen/x:1"})
        CHECK_FALSE(parse_dns_lists({bad}));
}

TEST_CASE("smtpd: X-Spam-* fields from outside are dropped, in the header only", "[spam]") {
    std::string msg = "Subject: x\n"
                      "X-Spam-Score: -100\n"
                      "x-spam-status : No, score=-100\n\tfolded\n"
                      "X-Spam-Flag: NO\n"
                      "X-Spam-Level: ***\n"
                      "\n"
                      "X-Spam-Score: 5\n";
    for (size_t step : {1, 3, 4096}) {
        ferry::verify::ForgedResultsFilter f("mx.example");
        std::string out;
        for (size_t i = 0; i < msg.size(); i += step) f.feed(std::string_view(msg).substr(i, step), out);
        f.finish(out);
        CHECK(out == "Subject: x\nX-Spam-Level: ***\n\nX-Spam-Score: 5\n");
        CHECK(f.spam_dropped() == 3);
        CHECK(f.dropped() == 0);
    }
}

TEST_CASE("clamd: INSTREAM replies", "[clamd]") {
    using ferry::smtpd::ClamdVerdict;
    using ferry::smtpd::parse_clamd_reply;
    CHECK(parse_clamd_reply("stream: OK").kind == ClamdVerdict::Kind::clean);
    CHECK(parse_clamd_reply(std::string("stream: OK\0", 11)).kind == ClamdVerdict::Kind::clean);
    auto found = parse_clamd_reply("stream: Win.Test.EICAR_HDB-1 FOUND");
    CHECK(found.kind == ClamdVerdict::Kind::found);
    CHECK(found.text == "Win.Test.EICAR_HDB-1");
    auto odd = parse_clamd_reply("stream: Bad\x01Name FOUND");
    CHECK(odd.text == "Bad?Name");  // peer text goes into a reply and a log line
    auto limit = parse_clamd_reply("INSTREAM size limit exceeded. ERROR");
    CHECK(limit.kind == ClamdVerdict::Kind::error);
    CHECK(limit.text == "answered \"INSTREAM size limit exceeded. ERROR\"");
    CHECK(parse_clamd_reply("").text == "no answer");
    CHECK(parse_clamd_reply(" FOUND").kind == ClamdVerdict::Kind::error);
}

TEST_CASE("spamd: CHECK replies", "[spam]") {
    using ferry::smtpd::parse_spamd_reply;
    auto s = parse_spamd_reply("SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 1000.3 / 5.0\r\n\r\n");
    REQUIRE(s);
    CHECK(*s == Approx(1000.3));
    CHECK(parse_spamd_reply("SPAMD/1.1 0 EX_OK\nspam: False ; -1.5 / 5.0\n\n").value() == Approx(-1.5));
    CHECK_FALSE(parse_spamd_reply("SPAMD/1.0 76 Bad header line: x\r\n\r\n"));
    CHECK_FALSE(parse_spamd_reply("SPAMD/1.1 0 EX_OK\r\n\r\nSpam: True ; 3 / 5\r\n"));  // not in the header
    CHECK_FALSE(parse_spamd_reply("SPAMD/1.1 0 EX_OK\r\nSpam: True ; x / 5.0\r\n\r\n"));
    CHECK_FALSE(parse_spamd_reply("HTTP/1.1 200 OK\r\nSpam: True ; 3 / 5\r\n\r\n"));
    CHECK_FALSE(parse_spamd_reply(""));
}
