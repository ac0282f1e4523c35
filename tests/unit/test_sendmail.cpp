// Unit tests of ferry-sendmail's pure parts: the option parser, the input reader, -t and the header completion.
#include <catch.hpp>

#include "mta/sendmail/message.hpp"
#include "mta/sendmail/options.hpp"

using namespace ferry::sendmail;

namespace {

ParseResult parse(std::vector<std::string> args, const std::string& program = "sendmail") {
    return parse_options(args, program);
}

Completion base_completion(bool extract) {
    Completion c;
    c.extract = extract;
    c.from_address = "alice@host.test";
    c.full_name = "Alice Smith";
    c.hostname = "host.test";
    c.now = 1700000000;
    c.message_id_local = "123.45";
    return c;
}

}  // namespace

TEST_CASE("sendmail options: the flags programs use", "[sendmail]") {
    auto r = parse({"-t", "-i", "-f", "bob@x.test", "-F", "Bob B", "-v", "-C", "/etc/f.conf", "a@x.test", "b@y.test"});
    REQUIRE(r.error.empty());
    CHECK(r.options.mode == Mode::deliver);
    CHECK(r.options.extract_recipients);
    CHECK(r.options.ignore_dots);
    CHECK(r.options.verbose);
    CHECK(*r.options.sender == "bob@x.test");
    CHECK(*r.options.full_name == "Bob B");
    CHECK(*r.options.config == "/etc/f.conf");
    CHECK(r.options.recipients == std::vector<std::string>{"a@x.test", "b@y.test"});
}

TEST_CASE("sendmail options: attached values, -r, -oi, grouped flags, the null sender", "[sendmail]") {
    auto r = parse({"-ti", "-rroot@x.test", "-oi", "-Fname", "--", "-odd@x.test"});
    REQUIRE(r.error.empty());
    CHECK(r.options.extract_recipients);
    CHECK(r.options.ignore_dots);
    CHECK(*r.options.sender == "root@x.test");
    CHECK(*r.options.full_name == "name");
    CHECK(r.options.recipients == std::vector<std::string>{"-odd@x.test"});
    CHECK(*parse({"-f", "<>", "a@x"}).options.sender == "");
    CHECK(*parse({"-f", "", "a@x"}).options.sender == "");
}

TEST_CASE("sendmail options: Postfix's ignored options are taken silently", "[sendmail]") {
    auto r = parse({"-oem", "-odi", "-odb", "-B", "8BITMIME", "-B8BITMIME", "-N", "success,failure", "-o", "Q/tmp",
                    "-R", "hdrs", "-V", "envid", "-m", "-n", "-U", "-G", "-h", "17", "-L", "label", "-X", "/tmp/log",
                    "-O", "opt=val", "-bm", "a@x.test"});
    REQUIRE(r.error.empty());
    CHECK_FALSE(r.options.ignore_dots);
    CHECK(r.options.mode == Mode::deliver);
    CHECK(r.options.recipients == std::vector<std::string>{"a@x.test"});
}

TEST_CASE("sendmail options: modes, mailq by name, -q with a domain", "[sendmail]") {
    CHECK(parse({"-bs"}).options.mode == Mode::smtp);
    CHECK(parse({"-bp"}).options.mode == Mode::list_queue);
    CHECK(parse({}, "mailq").options.mode == Mode::list_queue);
    CHECK(parse({"-q"}).options.mode == Mode::flush);
    auto q = parse({"-qRexample.org"});
    CHECK(q.options.mode == Mode::flush);
    CHECK(q.options.flush_domain == "example.org");
}

TEST_CASE("sendmail options: usage errors", "[sendmail]") {
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {"-Z"}, {"-f"}, {"-bz"}, {"-bd"}, {"-bs", "-bp"}, {"-bp", "a@x.test"}, {"-C"}, {"-tZ"}}) {
        INFO(args.front());
        CHECK_FALSE(parse(args).error.empty());
    }
}

TEST_CASE("sendmail input: a lone dot ends the message unless -i; CRLF becomes LF", "[sendmail]") {
    InputReader r(false);
    CHECK_FALSE(r.feed("Subject: x\r\n\r\nline\r\n..two\r\n.\r\nafter\r\n"));
    CHECK(r.message() == "Subject: x\n\nline\n..two\n");
    InputReader i(true);
    CHECK(i.feed("a\n.\nb"));
    i.finish();
    CHECK(i.message() == "a\n.\nb\n");
    // Fed one byte at a time it reads the same.
    InputReader bytes(false);
    std::string in = "x: y\r\n\r\nbody\n.\n";
    for (char c : in) bytes.feed(std::string_view(&c, 1));
    CHECK(bytes.message() == "x: y\n\nbody\n");
}

TEST_CASE("sendmail -t: address lists with names, comments, groups and quotes", "[sendmail]") {
    CHECK(parse_address_list("a@x.test") == std::vector<std::string>{"a@x.test"});
    CHECK(parse_address_list("\"Smith, Al\" <al@x.test>, b@y.test (Bee, B), C <c@z.test>") ==
          std::vector<std::string>{"al@x.test", "b@y.test", "c@z.test"});
    CHECK(parse_address_list("team: d@x.test, e@x.test;, f@x.test") ==
          std::vector<std::string>{"d@x.test", "e@x.test", "f@x.test"});
    CHECK(parse_address_list("undisclosed-recipients:;").empty());
    CHECK(parse_address_list("<@route.test:g@x.test>") == std::vector<std::string>{"g@x.test"});
}

TEST_CASE("sendmail -t: recipients from To, Cc and Bcc, Bcc removed, folded fields", "[sendmail]") {
    std::string msg =
        "To: A <a@x.test>,\n\tb@x.test\nCc: c@x.test\nBcc: secret@x.test\nbcc: other@x.test,\n a@x.test\n"
        "Subject: hi\n\nbody\nBcc: not a header\n";
    Prepared p = complete_message(msg, base_completion(true));
    CHECK(p.recipients == std::vector<std::string>{"a@x.test", "b@x.test", "c@x.test", "secret@x.test", "other@x.test"});
    CHECK(p.message.find("secret") == std::string::npos);
    CHECK(p.message.find("other@x.test") == std::string::npos);
    CHECK(p.message.find("To: A <a@x.test>,\n\tb@x.test\n") != std::string::npos);
    CHECK(p.message.find("\n\nbody\nBcc: not a header\n") != std::string::npos);
    CHECK(complete_message(msg, base_completion(false)).recipients.empty());
}

TEST_CASE("sendmail: From, Date and Message-ID added only when missing", "[sendmail]") {
    Prepared p = complete_message("Subject: s\n\nbody\n", base_completion(false));
    CHECK(p.message.rfind("Subject: s\nFrom: Alice Smith <alice@host.test>\nDate: ", 0) == 0);
    CHECK(p.message.find("Message-ID: <123.45@host.test>\n\nbody\n") != std::string::npos);
    std::string full = "From: x@y.test\nDate: Tue, 14 Nov 2023 10:00:00 +0000\nMessage-ID: <m@y>\n\nb\n";
    CHECK(complete_message(full, base_completion(false)).message == full);
    // A name with specials is quoted; an empty name gives the bare address.
    CHECK(mailbox_with_name("Smith, Al", "a@x") == "\"Smith, Al\" <a@x>");
    CHECK(mailbox_with_name("", "a@x") == "<a@x>");
}

TEST_CASE("sendmail: a message without a header, and an mbox From_ line", "[sendmail]") {
    Prepared p = complete_message("just text\nmore\n", base_completion(false));
    CHECK(p.message.find("\n\njust text\nmore\n") != std::string::npos);
    CHECK(p.message.rfind("From: ", 0) == 0);
    Prepared m = complete_message("From alice Tue Nov 14 10:00:00 2023\nSubject: s\n\nb\n", base_completion(false));
    CHECK(m.message.rfind("Subject: s\n", 0) == 0);
}
