// Unit tests of ferry-mda's Sieve plan: actions to folders and flags, scripts combined, header edits, junk scores.
#include <catch.hpp>

#include <stdio.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "mda/sieve/interpreter.hpp"
#include "mda/sieve/script.hpp"
#include "mda/sieve_delivery.hpp"
#include "mda/sieve_plan.hpp"

using namespace ferry::mda;
using ferry::sieve::Action;
using ferry::sieve::Outcome;

namespace {

const char* const kMessage =
    "From: ann@example.org\n"
    "Subject: [barlist] hello\n"
    "X-Spam-Score: 7.5\n"
    "Received: from a\n"
    "\tby b\n"
    "\n"
    "body\n";

Outcome run(const char* script, const char* message = kMessage) {
    auto c = ferry::sieve::compile(script);
    REQUIRE(c.script);
    ferry::sieve::RunInput in;
    in.message = message;
    in.envelope.from = "ann@example.org";
    in.envelope.to = "me+tag@example.com";
    auto r = ferry::sieve::run(*c.script, in);
    REQUIRE(r);
    return r.value();
}

std::vector<std::string> folders(const DeliveryPlan& p) {
    std::vector<std::string> out;
    for (const auto& c : p.copies) out.push_back(c.folder + (c.flags.empty() ? "" : ":" + c.flags) + (c.create ? "+" : ""));
    return out;
}

}  // namespace

TEST_CASE("IMAP flags become Maildir info letters, keywords are left out", "[mda][sieve]") {
    CHECK(maildir_flags({"\\Seen", "\\Flagged"}) == "FS");
    CHECK(maildir_flags({"\\answered", "\\DELETED", "\\Draft", "$Label1", "\\Seen", "\\Seen"}) == "DRST");
    CHECK(maildir_flags({}).empty());
}

TEST_CASE("The actions of a script become one copy per folder", "[mda][sieve]") {
    struct Row {
        const char* script;
        std::vector<std::string> folders;
    } rows[] = {
        {"", {"INBOX"}},
        {"require [\"fileinto\", \"mailbox\"]; if header :contains \"subject\" \"[barlist]\" { fileinto :create \"Lists\"; stop; }",
         {"Lists+"}},
        {"require \"fileinto\"; fileinto \"A\"; keep;", {"A", "INBOX"}},
        {"require [\"fileinto\", \"imap4flags\"]; fileinto :flags \"\\\\Seen\" \"A\"; fileinto \"inbox\";", {"A:S", "INBOX"}},
        {"require \"imap4flags\"; setflag \"\\\\Flagged $Work\";", {"INBOX:F"}},
        {"discard;", {}},
        {"require \"reject\"; reject \"no thanks\";", {}},
    };
    for (const auto& r : rows) {
        INFO(r.script);
        CHECK(folders(make_plan(combine({run(r.script)}))) == r.folders);
    }
    auto rejected = make_plan(combine({run("require \"reject\"; reject \"no thanks\";")}));
    REQUIRE(rejected.reject);
    CHECK(*rejected.reject == "no thanks");
    CHECK(make_plan(combine({run("discard;")})).discard);
}

TEST_CASE("Junk takes the implicit keep only", "[mda][sieve]") {
    CHECK(folders(make_plan(combine({run("")}), std::string("Junk"))) == std::vector<std::string>{"Junk+"});
    CHECK(folders(make_plan(combine({run("keep;")}), std::string("Junk"))) == std::vector<std::string>{"INBOX"});
    CHECK(folders(make_plan(combine({run("require \"fileinto\"; fileinto \"A\";")}), std::string("Junk"))) ==
          std::vector<std::string>{"A"});
    CHECK(folders(keep_plan(std::string("Junk"))) == std::vector<std::string>{"Junk+"});
    CHECK(folders(keep_plan()) == std::vector<std::string>{"INBOX"});
}

TEST_CASE("Scripts in sequence: any one cancels the implicit keep, discard yields to a delivery", "[mda][sieve]") {
    auto before = run("require \"fileinto\"; fileinto \"Site\";");
    auto user = run("");
    CHECK(folders(make_plan(combine({before, user}))) == std::vector<std::string>{"Site"});
    CHECK(folders(make_plan(combine({run(""), run("")}))) == std::vector<std::string>{"INBOX"});
    CHECK(folders(make_plan(combine({run("discard;"), run("keep;")}))) == std::vector<std::string>{"INBOX"});
    auto discarded = make_plan(combine({run("discard;"), run("")}));
    CHECK(discarded.copies.empty());
    CHECK(discarded.discard);
}

TEST_CASE("A plain redirect that fails adds INBOX, flags joined", "[mda][sieve]") {
    auto plan = make_plan(combine({run("require \"fileinto\"; redirect \"x@example.net\"; fileinto \"A\";")}));
    REQUIRE(plan.redirects.size() == 1);
    CHECK_FALSE(plan.redirects[0].copy);
    add_inbox(plan);
    add_inbox(plan, "S");
    CHECK(folders(plan) == std::vector<std::string>{"A", "INBOX:S"});
}

TEST_CASE("Header edits rewrite the header section and leave the body", "[mda][sieve]") {
    auto o = run("require \"editheader\"; addheader \"X-Added\" \"one\"; addheader :last \"X-Last\" \"caf\xc3\xa9\";"
                 " deleteheader \"x-spam-score\";");
    auto plan = make_plan(combine({o}));
    REQUIRE(plan.edits.size() == 3);
    std::string m = kMessage;
    auto h = apply_edits(m, plan.edits);
    CHECK(h.header ==
          "X-Added: one\n"
          "From: ann@example.org\n"
          "Subject: [barlist] hello\n"
          "Received: from a\n"
          "\tby b\n"
          "X-Last: =?UTF-8?B?Y2Fmw6k=?=\n"
          "\n");
    CHECK(m.substr(h.replaced) == "body\n");
    // No edits: the header section as it was.
    auto same = apply_edits(m, {});
    CHECK(same.header + m.substr(same.replaced) == m);
    // A message without a body or empty line.
    std::string bare = "Subject: x\n";
    auto b = apply_edits(bare, plan.edits);
    CHECK(b.replaced == bare.size());
    CHECK(b.header == "X-Added: one\nSubject: x\nX-Last: =?UTF-8?B?Y2Fmw6k=?=\n\n");
}

TEST_CASE("The first X-Spam-Score field is the score; thresholds per domain", "[mda][sieve]") {
    CHECK(spam_score(kMessage) == 7.5);
    CHECK(spam_score("X-Spam-Score: 1000.0\nX-Spam-Score: 1\n\nb") == 1000.0);
    CHECK_FALSE(spam_score("X-Spam-Score: lots\n\n"));
    CHECK_FALSE(spam_score("Subject: x\n\nX-Spam-Score: 9\n"));
    const char* map = "# thresholds\nexample.org 7.5\n\nEXAMPLE.net\t0\nbroken\n";
    CHECK(junk_threshold_of(map, "example.org") == 7.5);
    CHECK(junk_threshold_of(map, "example.NET") == 0.0);
    CHECK_FALSE(junk_threshold_of(map, "example.com"));
    CHECK_FALSE(junk_threshold_of(map, "broken"));
}

TEST_CASE("The scripts read the header and as much body as allowed", "[mda][sieve]") {
    FILE* f = tmpfile();
    REQUIRE(f);
    std::string trace = "Return-Path: <a@b>\n";
    std::string m = "Subject: x\nX: y\n\n0123456789\n";
    fputs((trace + m).c_str(), f);
    fflush(f);
    int fd = fileno(f);
    uint64_t start = trace.size(), end = trace.size() + m.size();
    CHECK(read_message_start(fd, start, end, 0).value() == "Subject: x\nX: y\n\n");
    CHECK(read_message_start(fd, start, end, 4).value() == "Subject: x\nX: y\n\n0123");
    CHECK(read_message_start(fd, start, end, UINT64_MAX).value() == m);
    CHECK(read_message_start(fd, start, start + 5, UINT64_MAX).value() == "Subje");
    fclose(f);
}
