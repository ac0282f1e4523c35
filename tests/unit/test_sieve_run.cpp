// Unit tests of the Sieve interpreter: a table of scripts x messages x envelopes with the actions each must give.
#include <catch.hpp>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "mda/sieve/message.hpp"
#include "sieve_util.hpp"

using namespace ferry::sieve;
using namespace ferry::sieve::test;
using Lines = std::vector<std::string>;

namespace {

struct Row {
    const char* script;
    Lines actions;
    const char* message = kPlain;
    std::function<void(RunInput&)> adjust = nullptr;
};

void check_rows(const std::vector<Row>& rows) {
    for (const auto& r : rows) {
        RunInput in = default_input(r.message);
        if (r.adjust) r.adjust(in);
        INFO(r.script);
        CHECK(run_lines(r.script, in) == r.actions);
    }
}

const Lines kKept = {"keep (implicit)"};
const Lines kFiled = {"fileinto \"yes\""};
// A test is true when its script files into "yes", false when the implicit keep stays.
std::string when(const std::string& require, const std::string& test) {
    return "require [\"fileinto\"" + (require.empty() ? "" : ", " + require) + "]; if " + test + " { fileinto \"yes\"; }";
}

}  // namespace

TEST_CASE("sieve run: actions and the implicit keep", "[sieve]") {
    check_rows({
        {"", kKept},
        {"keep;", {"keep"}},
        {"keep; keep;", {"keep"}},
        {"discard;", {"discard"}},
        {"discard; keep;", {"keep"}},  // discard only cancels the implicit keep
        {"require \"fileinto\"; fileinto \"Work\";", {"fileinto \"Work\""}},
        {"require \"fileinto\"; fileinto \"Work\"; fileinto \"Work\";", {"fileinto \"Work\""}},
        {"require \"fileinto\"; fileinto \"Work\"; fileinto \"work\";", {"fileinto \"Work\"", "fileinto \"work\""}},
        {"require \"fileinto\"; fileinto \"inbox\"; keep;", {"keep"}},
        {"require \"fileinto\"; fileinto \"INBOX\"; keep;", {"keep"}},
        {"require [\"fileinto\", \"copy\"]; fileinto :copy \"Work\";", {"fileinto \"Work\" :copy", "keep (implicit)"}},
        {"require [\"fileinto\", \"mailbox\"]; fileinto :create \"New\";", {"fileinto \"New\" :create"}},
        {"redirect \"x@example.net\";", {"redirect \"x@example.net\""}},
        {"redirect \"Other <x@example.net>\";", {"redirect \"x@example.net\""}},
        {"redirect \"x@example.net\"; redirect \"x@Example.NET\";", {"redirect \"x@example.net\""}},
        {"redirect \"x@example.net\"; redirect \"X@example.net\";", {"redirect \"x@example.net\"", "redirect \"X@example.net\""}},
        {"require \"copy\"; redirect :copy \"x@example.net\";", {"redirect \"x@example.net\" :copy", "keep (implicit)"}},
        {"redirect \"not an address\";", {"compile error: line 1, column 10: redirect to a bad address 'not an address'"}},
        {"require \"variables\"; set \"a\" \"not an address\";\nredirect \"${a}\";",
         {"run error: line 2: redirect to a bad address 'not an address'"}},
        {"stop; discard;", kKept},
        {"discard; stop; keep;", {"discard"}},
        {"require \"reject\"; reject \"go away\";", {"reject \"go away\""}},
        {"require \"ereject\"; ereject text:\nno\n.\n;", {"ereject \"no\r\n\""}},
        {"require [\"reject\", \"fileinto\"]; fileinto \"a\"; reject \"no\";",
         {"run error: line 1: reject cannot be combined with another reject, keep, fileinto, redirect or vacation"}},
        {"require \"reject\"; reject \"no\"; keep;",
         {"run error: line 1: reject cannot be combined with another reject, keep, fileinto, redirect or vacation"}},
        {"require \"reject\"; reject \"no\"; discard;", {"reject \"no\"", "discard"}},
        {"if true { keep; } elsif true { discard; } else { discard; }", {"keep"}},
        {"if false { keep; } elsif true { discard; } else { keep; }", {"discard"}},
        {"if false { keep; } elsif false { keep; } else { discard; }", {"discard"}},
        {"if false { keep; } if true { discard; }", {"discard"}},
        {"if true { if false { keep; } else { discard; stop; } } keep;", {"discard"}},
    });
}

TEST_CASE("sieve run: stop is reported", "[sieve]") {
    CompileResult c = compile("if true { stop; } discard;");
    REQUIRE(c.script);
    auto out = run(*c.script, default_input(kPlain));
    REQUIRE(out);
    CHECK(out->stopped);
    CHECK(out->actions.size() == 1);
    CompileResult plain = compile("keep;");
    auto kept = run(*plain.script, default_input(kPlain));
    REQUIRE(kept);
    CHECK_FALSE(kept->stopped);
}

TEST_CASE("sieve run: header, exists, size and the logic tests", "[sieve]") {
    check_rows({
        {when("", "header :contains \"subject\" \"ACME\"").c_str(), kFiled},
        {when("", "header :is \"Subject\" \"[acme-users] [fwd] version 1.0 is out\"").c_str(), kFiled},
        {when("", "header :is :comparator \"i;octet\" \"subject\" \"[ACME-users] [fwd] version 1.0 is out\"").c_str(),
         kKept},
        {when("", "header :contains :comparator \"i;octet\" \"subject\" \"acme\"").c_str(), kFiled},
        {when("", "header :matches \"subject\" \"*VERSION ?.? *\"").c_str(), kFiled},
        {when("", "header :matches :comparator \"i;octet\" \"subject\" \"*VERSION*\"").c_str(), kKept},
        {when("", "header :contains [\"x-none\", \"to\"] [\"zzz\", \"other@\"]").c_str(), kFiled},
        {when("", "header :is \"x-none\" \"\"").c_str(), kKept},  // an absent header matches nothing
        {when("", "header :contains \"from\" \"Ann Example\"").c_str(), kFiled},
        {when("", "header :is \"subject\" \"Café menu\"").c_str(), kFiled, kMime},  // RFC 2047 decoded
        {when("", "exists [\"From\", \"subject\"]").c_str(), kFiled},
        {when("", "exists [\"From\", \"X-None\"]").c_str(), kKept},
        {when("", "size :over 100").c_str(), kFiled},
        {when("", "size :under 100").c_str(), kKept},
        {when("", "size :under 1M").c_str(), kFiled},
        {when("", "true").c_str(), kFiled},
        {when("", "false").c_str(), kKept},
        {when("", "not false").c_str(), kFiled},
        {when("", "allof (true, true, exists \"from\")").c_str(), kFiled},
        {when("", "allof (true, false)").c_str(), kKept},
        {when("", "anyof (false, false)").c_str(), kKept},
        {when("", "anyof (false, not exists \"x-none\")").c_str(), kFiled},
    });
}

TEST_CASE("sieve run: LF line ends and folded fields read as CRLF ones", "[sieve]") {
    const char* lf = "From: Ann <ann@example.org>\nSubject: a folded\n\tsubject line\nX-Empty:\n\nbody text\n";
    check_rows({
        {when("", "header :is \"subject\" \"a folded\tsubject line\"").c_str(), kFiled, lf},
        {when("", "address :is \"from\" \"ann@example.org\"").c_str(), kFiled, lf},
        {when("", "header :is \"x-empty\" \"\"").c_str(), kFiled, lf},
        {when("\"body\"", "body :raw :is \"body text\n\"").c_str(), kFiled, lf},
    });
}

TEST_CASE("sieve run: address and envelope with address parts and subaddress", "[sieve]") {
    auto null_sender = [](RunInput& in) { in.envelope.from = ""; };
    check_rows({
        {when("", "address :is \"from\" \"ann+lists@example.org\"").c_str(), kFiled},
        {when("", "address :domain :is \"from\" \"example.org\"").c_str(), kFiled},
        {when("", "address :domain :is :comparator \"i;octet\" \"from\" \"example.org\"").c_str(), kKept},
        {when("", "address :localpart :is \"from\" \"ann+lists\"").c_str(), kFiled},
        {when("", "address :all :is \"to\" \"other@example.net\"").c_str(), kFiled},
        {when("", "address :is \"to\" \"Other\"").c_str(), kKept},  // the display name is not the address
        {when("", "address :is \"cc\" \"dora@example.com\"").c_str(), kFiled},  // inside a group
        {when("", "address :contains \"cc\" \"group\"").c_str(), kKept},
        {("require [\"fileinto\", \"variables\"]; set \"h\" \"subject\"; "
          "if address :contains [\"${h}\", \"to\"] \"acme\" { fileinto \"yes\"; }"),
         kKept},  // a field named at run time that holds no addresses is not read
        {when("\"subaddress\"", "address :user :is \"from\" \"ann\"").c_str(), kFiled},
        {when("\"subaddress\"", "address :detail :is \"from\" \"lists\"").c_str(), kFiled},
        {when("\"subaddress\"", "address :detail :matches \"to\" \"*\"").c_str(), kKept},  // no "+": no detail
        {when("\"subaddress\"", "address :user :is \"to\" \"me\"").c_str(), kFiled},
        {when("\"envelope\"", "envelope :is \"from\" \"ann+lists@example.org\"").c_str(), kFiled},
        {when("\"envelope\"", "envelope :domain :is \"to\" \"example.com\"").c_str(), kFiled},
        {when("\"envelope\", \"subaddress\"", "envelope :detail \"from\" \"lists\"").c_str(), kFiled},
        // recipient_delimiter: each character a delimiter; empty, no address has a detail.
        {when("\"envelope\", \"subaddress\"", "envelope :detail \"to\" \"x+y\"").c_str(), kFiled, kPlain,
         [](RunInput& in) { in.envelope.to = "me-x+y@example.com"; in.subaddress_delimiters = "-"; }},
        {when("\"envelope\", \"subaddress\"", "envelope :user \"to\" \"me\"").c_str(), kFiled, kPlain,
         [](RunInput& in) { in.envelope.to = "me+x-y@example.com"; in.subaddress_delimiters = "-+"; }},
        {when("\"envelope\", \"subaddress\"", "envelope :detail :matches \"from\" \"*\"").c_str(), kKept, kPlain,
         [](RunInput& in) { in.subaddress_delimiters = ""; }},
        {when("\"envelope\"", "envelope :is \"from\" \"\"").c_str(), kKept},
        {when("\"envelope\"", "envelope :is \"from\" \"\"").c_str(), kFiled, kPlain, null_sender},
        {when("\"envelope\"", "envelope :localpart :is \"to\" \"me\"").c_str(), kFiled},
        {when("\"envelope\"", "envelope :matches \"auth\" \"*\"").c_str(), kKept},  // not authenticated
        {when("\"envelope\"", "envelope :is \"auth\" \"ann@example.org\"").c_str(), kFiled, kPlain,
         [](RunInput& in) { in.envelope.auth = "ann@example.org"; }},
    });
}

TEST_CASE("sieve run: comparators and relational tests", "[sieve]") {
    const std::string rel = "\"relational\", \"comparator-i;ascii-numeric\"";
    check_rows({
        {when(rel, "header :value \"gt\" :comparator \"i;ascii-numeric\" \"x-count\" \"9\"").c_str(), kFiled},
        {when(rel, "header :value \"gt\" \"x-count\" \"9\"").c_str(), kKept},  // casemap: "12" sorts before "9"
        {when(rel, "header :value \"lt\" :comparator \"i;ascii-numeric\" \"x-count\" \"9\"").c_str(), kKept},
        {when(rel, "header :is :comparator \"i;ascii-numeric\" \"x-count\" \"012\"").c_str(), kFiled},
        {when(rel, "header :value \"ge\" \"subject\" \"[ACME\"").c_str(), kFiled},
        {when(rel, "header :value \"ne\" \"subject\" \"x\"").c_str(), kFiled},
        {when(rel, "header :value \"eq\" :comparator \"i;octet\" \"x-count\" \"12\"").c_str(), kFiled},
        {when(rel, "header :value \"le\" :comparator \"i;ascii-numeric\" \"x-count\" \"12\"").c_str(), kFiled},
        {when(rel, "header :count \"eq\" :comparator \"i;ascii-numeric\" \"received\" \"2\"").c_str(), kFiled},
        {when(rel, "header :count \"gt\" :comparator \"i;ascii-numeric\" [\"received\", \"subject\"] \"2\"").c_str(),
         kFiled},
        {when(rel, "header :count \"eq\" :comparator \"i;ascii-numeric\" \"x-none\" \"0\"").c_str(), kFiled},
        {when(rel, "address :count \"eq\" :comparator \"i;ascii-numeric\" [\"to\", \"cc\"] \"4\"").c_str(), kFiled},
        {when(rel, "address :count \"lt\" :comparator \"i;ascii-numeric\" \"to\" \"2\"").c_str(), kKept},
    });
}

TEST_CASE("sieve run: body over decoded MIME text", "[sieve]") {
    check_rows({
        {when("\"body\"", "body :contains \"this is the body\"").c_str(), kFiled},
        {when("\"body\"", "body :contains \"Subject\"").c_str(), kKept},  // the header is not the body
        {when("\"body\"", "body :text :contains \"caf\xc3\xa9 est pr\xc3\xaat\"").c_str(), kFiled, kMime},
        {when("\"body\"", "body :contains \"Special offer\"").c_str(), kFiled, kMime},  // base64 text/html
        {when("\"body\"", "body :text :contains \"<b>\"").c_str(), kKept, kMime},  // HTML read as text
        {when("\"body\"", "body :contains \"secret-binary\"").c_str(), kKept, kMime},  // not text
        {when("\"body\"", "body :content \"application\" :contains \"secret\"").c_str(), kFiled, kMime},
        {when("\"body\"", "body :content \"text/html\" :contains \"caf\"").c_str(), kKept, kMime},
        {when("\"body\"", "body :content \"text/html\" :contains \"<b>\"").c_str(), kFiled, kMime},
        {when("\"body\"", "body :raw :contains \"PGI+U3BlY2lhbCBvZmZlcjwvYj4=\"").c_str(), kFiled, kMime},
        {when("\"body\"", "body :raw :contains \"Special offer\"").c_str(), kKept, kMime},
        {when("\"body\"", "body :content \"\" :contains \"secret\"").c_str(), kFiled, kMime},
        {when("\"body\"", "body :matches \"*body.*\"").c_str(), kFiled},
        {"require [\"body\", \"variables\", \"fileinto\"]; if body :matches \"* world*\" { fileinto \"[${1}]\"; }",
         {"fileinto \"[]\""}},  // no match variables from body
    });
}

TEST_CASE("sieve run: variables", "[sieve]") {
    const std::string v = "require [\"fileinto\", \"variables\"]; ";
    check_rows({
        {(v + "if header :matches \"Subject\" \"[*] *\" { fileinto \"lists.${1}\"; }").c_str(),
         {"fileinto \"lists.acme-users\""}},
        {(v + "if header :matches \"Subject\" \"[*] *\" { fileinto \"${2}|${0}\"; }").c_str(),
         {"fileinto \"[fwd] version 1.0 is out|[acme-users] [fwd] version 1.0 is out\""}},
        {(v + "if address :matches \"from\" \"*@*\" { set \"who\" \"${1}\"; } fileinto \"${WHO}\";").c_str(),
         {"fileinto \"ann+lists\""}},
        {(v + "set :lower :upperfirst \"x\" \"hELLO\"; fileinto \"${x}\";").c_str(), {"fileinto \"Hello\""}},
        {(v + "set :upper \"x\" \"abc\"; fileinto \"${x}\";").c_str(), {"fileinto \"ABC\""}},
        {(v + "set :lowerfirst \"x\" \"ABC\"; fileinto \"${x}\";").c_str(), {"fileinto \"aBC\""}},
        {(v + "set :length \"x\" \"caf\xc3\xa9\"; fileinto \"${x}\";").c_str(), {"fileinto \"4\""}},
        {(v + "set :quotewildcard \"x\" \"a*b?c\\\\\"; fileinto \"${x}\";").c_str(), {"fileinto \"a\\\\*b\\\\?c\\\\\\\\\""}},
        {(v + "set \"a\" \"1\"; set \"b\" \"${a}${a}\"; fileinto \"${b}-${none}-${}-${a\";").c_str(),
         {"fileinto \"11--${}-${a\""}},
        {(v + "set \"x\" \"Hello\"; if string :is \"${x}\" \"hello\" { fileinto \"yes\"; }").c_str(), kFiled},
        {(v + "if string :matches \"a-b\" \"*-*\" { fileinto \"${2}${1}\"; }").c_str(), {"fileinto \"ba\""}},
        {(v + "if header :contains \"subject\" \"acme\" { fileinto \"[${1}]\"; }").c_str(), {"fileinto \"[]\""}},
        {("require [\"fileinto\", \"variables\", \"relational\", \"comparator-i;ascii-numeric\"]; "
          "if string :count \"eq\" :comparator \"i;ascii-numeric\" [\"a\", \"\", \"b\"] \"2\" { fileinto \"yes\"; }"),
         kFiled},
        {"require \"fileinto\"; fileinto \"${x}\";", {"fileinto \"${x}\""}},  // without variables, no expansion
    });
}

TEST_CASE("sieve run: imap4flags", "[sieve]") {
    const std::string f = "require [\"fileinto\", \"imap4flags\", \"variables\"]; ";
    check_rows({
        {(f + "addflag \"\\\\Seen\"; keep;").c_str(), {"keep :flags \"\\\\Seen\""}},
        {(f + "addflag \"\\\\Seen\";").c_str(), {"keep (implicit) :flags \"\\\\Seen\""}},
        {(f + "setflag [\"a\", \"b c\"]; addflag \"A\"; removeflag \"b\"; fileinto \"x\";").c_str(),
         {"fileinto \"x\" :flags \"a c\""}},
        {(f + "addflag \"a\"; fileinto :flags \"\\\\Flagged\" \"x\"; fileinto \"y\";").c_str(),
         {"fileinto \"x\" :flags \"\\\\Flagged\"", "fileinto \"y\" :flags \"a\""}},
        {(f + "setflag \"v\" \"one two\"; if hasflag \"v\" \"two\" { fileinto \"yes\"; }").c_str(), kFiled},
        {(f + "setflag \"v\" \"one two\"; if hasflag \"two\" { fileinto \"yes\"; }").c_str(), kKept},
        {(f + "addflag \"$Work\"; if hasflag :contains \"wor\" { fileinto \"yes\"; }").c_str(),
         {"fileinto \"yes\" :flags \"$Work\""}},
        {(f + "setflag \"v\" \"a b\"; addflag \"v\" \"c\"; fileinto \"${v}\";").c_str(), {"fileinto \"a b c\""}},
    });
}

TEST_CASE("sieve run: date, currentdate and index", "[sieve]") {
    auto zone = [](RunInput& in) { in.local_zone = -300; };
    const std::string d = "\"date\", \"index\", \"relational\"";
    check_rows({
        {when(d, "date :is \"date\" \"date\" \"2023-11-14\"").c_str(), kFiled},
        {when(d, "date :is \"date\" \"hour\" \"09\"").c_str(), kFiled},  // local zone UTC
        {when(d, "date :is \"date\" \"hour\" \"04\"").c_str(), kFiled, kPlain, zone},
        {when(d, "date :zone \"+0100\" :is \"date\" \"hour\" \"10\"").c_str(), kFiled},
        {when(d, "date :originalzone :is \"date\" \"zone\" \"+0100\"").c_str(), kFiled},
        {when(d, "date :is \"date\" \"iso8601\" \"2023-11-14T09:30:15Z\"").c_str(), kFiled},
        {when(d, "date :is \"date\" \"std11\" \"Tue, 14 Nov 2023 09:30:15 +0000\"").c_str(), kFiled},
        {when(d, "date :is \"date\" \"julian\" \"60262\"").c_str(), kFiled},
        {when(d, "date :is \"date\" \"weekday\" \"2\"").c_str(), kFiled},
        {when(d, "date :is \"date\" \"time\" \"09:30:15\"").c_str(), kFiled},
        {when(d, "date :is \"date\" \"month\" \"11\"").c_str(), kFiled},
        {when(d, "date :is \"date\" \"day\" \"14\"").c_str(), kFiled},
        {when(d, "date :is \"date\" \"minute\" \"30\"").c_str(), kFiled},
        {when(d, "date :is \"date\" \"second\" \"15\"").c_str(), kFiled},
        {when(d, "date :matches \"subject\" \"year\" \"*\"").c_str(), kKept},  // not a date
        {when(d, "date :index 2 :zone \"+0000\" :is \"received\" \"time\" \"09:30:10\"").c_str(), kKept},
        {when(d, "date :index 1 :last :zone \"+0000\" :is \"received\" \"time\" \"09:29:00\"").c_str(), kFiled},
        {when(d, "date :index 1 :zone \"+0000\" :is \"received\" \"time\" \"09:30:10\"").c_str(), kFiled},
        {when(d, "currentdate :is \"date\" \"2023-11-14\"").c_str(), kFiled},
        {when(d, "currentdate :zone \"+0200\" :is \"date\" \"2023-11-15\"").c_str(), kFiled},
        {when(d, "currentdate :value \"ge\" \"year\" \"2020\"").c_str(), kFiled},
        {when(d, "currentdate :is \"time\" \"22:13:20\"").c_str(), kFiled},
        {when(d, "header :index 2 :contains \"received\" \"from c\"").c_str(), kFiled},
        {when(d, "header :index 1 :contains \"received\" \"from c\"").c_str(), kKept},
        {when(d, "header :index 1 :last :contains \"received\" \"from c\"").c_str(), kFiled},
        {when(d, "header :index 3 :contains \"received\" \"from\"").c_str(), kKept},
        {when(d, "address :index 1 :is \"to\" \"other@example.net\"").c_str(), kFiled},
    });
}

TEST_CASE("sieve run: dates from RFC 5322 fields", "[sieve]") {
    auto dt = parse_date_time("Tue, 14 Nov 2023 10:30:15 +0100");
    REQUIRE(dt);
    CHECK(dt->seconds == 1699954215);
    CHECK(dt->zone == 60);
    auto obs = parse_date_time("14 Nov 23 10:30 EST (comment)");
    REQUIRE(obs);
    CHECK(obs->zone == -300);
    CHECK(*date_part(obs->seconds, 0, "iso8601") == "2023-11-14T15:30:00Z");
    CHECK_FALSE(parse_date_time("yesterday"));
    CHECK_FALSE(parse_date_time("Tue, 14 Nov 2023 25:30:15 +0100"));
    CHECK(*date_part(0, -90, "iso8601") == "1969-12-31T22:30:00-01:30");
    CHECK(*date_part(951782400, 0, "date") == "2000-02-29");
}

TEST_CASE("sieve run: environment, mailbox, duplicate, encoded-character", "[sieve]") {
    auto dup = [](RunInput& in) { in.duplicate = [](const DuplicateQuery& q) { return q.id == "<abc@example.org>"; }; };
    check_rows({
        {when("\"environment\"", "environment :is \"domain\" \"example.com\"").c_str(), kFiled},
        {when("\"environment\"", "environment :contains \"host\" \"mx.\"").c_str(), kFiled},
        {when("\"environment\"", "environment :matches \"x-none\" \"*\"").c_str(), kKept},
        {when("\"mailbox\"", "mailboxexists \"Work\"").c_str(), kFiled},
        {when("\"mailbox\"", "mailboxexists [\"Work\", \"Nope\"]").c_str(), kKept},
        {when("\"duplicate\"", "duplicate").c_str(), kFiled, kPlain, dup},
        {when("\"duplicate\"", "duplicate").c_str(), kKept},  // nobody remembers
        {when("\"duplicate\"", "duplicate :header \"x-count\"").c_str(), kKept, kPlain, dup},
        {when("\"duplicate\"", "duplicate :uniqueid \"<abc@example.org>\"").c_str(), kFiled, kPlain, dup},
        {"require [\"encoded-character\", \"fileinto\"]; fileinto \"${hex:4a 6F}${unicode:e9}\";",
         {"fileinto \"Jo\xc3\xa9\""}},
    });
    CompileResult c = compile("require \"duplicate\"; if duplicate :handle \"h\" :seconds 60 :last {}");
    REQUIRE(c.script);
    auto out = run(*c.script, default_input(kPlain));
    REQUIRE(out);
    REQUIRE(out->duplicates.size() == 1);
    CHECK(out->duplicates[0].handle == "h");
    CHECK(out->duplicates[0].id == "<abc@example.org>");
    CHECK(out->duplicates[0].seconds == 60);
    CHECK(out->duplicates[0].last);
}

TEST_CASE("sieve run: editheader changes what later tests see", "[sieve]") {
    const std::string e = "require [\"editheader\", \"fileinto\", \"index\"]; ";
    check_rows({
        {(e + "addheader \"X-Tag\" \"one\"; if header :is \"x-tag\" \"one\" { fileinto \"yes\"; }").c_str(),
         {"addheader \"X-Tag\" \"one\"", "fileinto \"yes\""}},
        {(e + "deleteheader \"Subject\"; if not exists \"subject\" { fileinto \"yes\"; }").c_str(),
         {"deleteheader \"Subject\" 1", "fileinto \"yes\""}},
        {(e + "deleteheader :index 1 :last \"received\";").c_str(), kKept},  // protected
        {(e + "addheader \"Received\" \"x\"; addheader :last \"X-B\" \"1\"; addheader :last \"X-B\" \"2\"; "
              "if header :index 1 :last :is \"x-b\" \"2\" { fileinto \"yes\"; }")
             .c_str(),
         {"addheader :last \"X-B\" \"1\"", "addheader :last \"X-B\" \"2\"", "fileinto \"yes\""}},
        {(e + "addheader \"X-B\" \"1\"; addheader \"X-B\" \"2\"; addheader \"X-B\" \"3\"; deleteheader :is \"X-B\" "
              "[\"1\", \"3\"];")
             .c_str(),
         {"addheader \"X-B\" \"1\"", "addheader \"X-B\" \"2\"", "addheader \"X-B\" \"3\"", "deleteheader \"X-B\" 1 3",
          "keep (implicit)"}},
        {(e + "deleteheader :index 2 \"X-None\";").c_str(), kKept},
    });
}

TEST_CASE("sieve run: vacation and its decision inputs", "[sieve]") {
    auto vacation = [](const char* script, std::function<void(RunInput&)> adjust = nullptr,
                       const char* message = kPlain) {
        CompileResult c = compile(std::string("require \"vacation\"; ") + script);
        REQUIRE(c.script);
        RunInput in = default_input(message);
        if (adjust) adjust(in);
        auto out = run(*c.script, in);
        REQUIRE(out);
        REQUIRE(out->actions.size() == 2);
        CHECK(out->actions[1].implicit);  // vacation keeps the message
        return out->actions[0].vacation;
    };
    Vacation v = vacation("vacation \"I am away\";");
    CHECK(v.reason == "I am away");
    CHECK(v.days == 7);
    CHECK(v.subject == "Auto: [acme-users] [fwd] version 1.0 is out");
    CHECK(v.to == "ann+lists@example.org");
    CHECK(v.suppressed.empty());
    CHECK(v.handle.size() == 16);
    CHECK(vacation("vacation :days 3 \"I am away\";").handle == v.handle);  // :days is not in the handle
    CHECK(vacation("vacation \"I am gone\";").handle != v.handle);
    CHECK(vacation("vacation :subject \"s\" \"I am away\";").handle != v.handle);
    CHECK(vacation("vacation :handle \"h1\" \"x\";").handle == "h1");
    CHECK(vacation("vacation :days 0 \"x\";").days == 1);
    CHECK(vacation("vacation :days 365 \"x\";").days == 30);
    Vacation all = vacation("vacation :days 2 :subject \"Away\" :from \"me@example.com\" :mime "
                            ":addresses [\"alias@example.com\"] \"x\";");
    CHECK(all.subject == "Away");
    CHECK(all.from == "me@example.com");
    CHECK(all.mime);
    CHECK(all.addresses == std::vector<std::string>{"alias@example.com"});
    CHECK(vacation("vacation \"x\";", [](RunInput& in) { in.envelope.from = ""; }).suppressed == "null sender");
    CHECK(vacation("vacation \"x\";", [](RunInput& in) { in.envelope.from = "owner-list@example.org"; }).suppressed ==
          "sender is a list or a daemon");
    CHECK(vacation("vacation \"x\";", [](RunInput& in) { in.envelope.from = "MAILER-DAEMON@example.org"; })
              .suppressed == "sender is a list or a daemon");
    CHECK(vacation("vacation \"x\";", [](RunInput& in) { in.envelope.from = "me@example.com"; }).suppressed ==
          "sender is the user");
    auto elsewhere = [](RunInput& in) { in.envelope.to = in.envelope.original_to = "hidden@example.com"; };
    CHECK(vacation("vacation \"x\";", elsewhere).suppressed == "the user is not in To, Cc or Bcc");
    CHECK(vacation("vacation :addresses \"dora@example.com\" \"x\";", elsewhere).suppressed.empty());
    CHECK(vacation("vacation \"x\";", [](RunInput& in) { in.own_addresses = {"carl@example.com"}; })
              .suppressed.empty());
    std::string bulk = std::string("Precedence: bulk\r\n") + kPlain;
    CHECK(vacation("vacation \"x\";", nullptr, bulk.c_str()).suppressed == "Precedence: bulk");
    std::string list = std::string("List-Id: <acme.example.org>\r\n") + kPlain;
    CHECK(vacation("vacation \"x\";", nullptr, list.c_str()).suppressed == "list message (List-Id)");
    std::string auto_sub = std::string("Auto-Submitted: auto-replied\r\n") + kPlain;
    CHECK(vacation("vacation \"x\";", nullptr, auto_sub.c_str()).suppressed == "Auto-Submitted message");
    std::string not_auto = std::string("Auto-Submitted: no\r\n") + kPlain;
    CHECK(vacation("vacation \"x\";", nullptr, not_auto.c_str()).suppressed.empty());

    check_rows({
        {"require \"vacation\"; vacation \"a\"; vacation \"b\";", {"run error: line 1: vacation used twice"}},
        {"require [\"vacation\", \"reject\"]; vacation \"a\"; reject \"b\";",
         {"run error: line 1: reject cannot be combined with another reject, keep, fileinto, redirect or vacation"}},
        {"require \"vacation\"; vacation :days 2 :handle \"h\" \"back soon\"; discard;",
         {"vacation to \"ann+lists@example.org\" :days 2 :subject \"Auto: [acme-users] [fwd] version 1.0 is out\" "
          ":handle \"h\" \"back soon\"",
          "discard"}},
    });
}

// A memory as ferry-mda keeps it, reduced to a set: what a run asks, and what it asks to remember,
// committed only when the caller says the delivery succeeded.
TEST_CASE("sieve run: duplicate with a memory committed after each delivery", "[sieve]") {
    std::set<std::string> memory;
    auto deliver = [&](const char* script, std::string_view message, bool succeeded = true) {
        CompileResult c = compile(script);
        REQUIRE(c.script);
        RunInput in = default_input(message);
        in.duplicate = [&](const DuplicateQuery& q) { return memory.count(q.handle + '\0' + q.id) != 0; };
        auto out = run(*c.script, in);
        REQUIRE(out);
        if (succeeded)
            for (const auto& q : out->duplicates) memory.insert(q.handle + '\0' + q.id);
        std::vector<std::string> lines;
        for (const auto& a : out->actions) lines.push_back(describe(a));
        return lines;
    };
    const char* script = "require \"duplicate\"; if duplicate { discard; }";
    CHECK(deliver(script, kPlain, false) == kKept);  // a failed delivery remembers nothing
    CHECK(deliver(script, kPlain) == kKept);
    CHECK(deliver(script, kPlain) == Lines{"discard"});
    // Another Message-ID, or the same one under another handle, is new.
    std::string other = std::string(kPlain);
    other.replace(other.find("<abc@example.org>"), 17, "<xyz@example.org>");
    CHECK(deliver(script, other) == kKept);
    const char* handled = "require \"duplicate\"; if duplicate :handle \"lists\" { discard; }";
    CHECK(deliver(handled, kPlain) == kKept);
    CHECK(deliver(handled, kPlain) == Lines{"discard"});
    // Two tests of one id in one run give the same answer: nothing is remembered before the end.
    const char* twice = "require [\"duplicate\", \"fileinto\"]; if duplicate :uniqueid \"u1\" { discard; }\n"
                        "if duplicate :uniqueid \"u1\" { fileinto \"Work\"; }";
    CHECK(deliver(twice, kPlain) == kKept);
    CHECK(deliver(twice, kPlain) == Lines{"fileinto \"Work\""});
    // A message without the field is never a duplicate and asks nothing to be remembered.
    CompileResult c = compile("require \"duplicate\"; if duplicate :header \"X-None\" { discard; }");
    REQUIRE(c.script);
    auto out = run(*c.script, default_input(kPlain));
    REQUIRE(out);
    CHECK(out->duplicates.empty());
}
