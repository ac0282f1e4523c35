// Unit tests of the Maildir store: unique names, the name parser, delivery, listing and tmp cleanup.
#include <catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "common/store/maildir.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;

namespace {

// A temporary directory removed at the end of the test.
using test::TempDir;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool is_dir(const std::string& path, mode_t* mode = nullptr) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
    if (mode) *mode = st.st_mode & 07777;
    return true;
}

size_t count_files(const std::string& dir) {
    auto l = std::string("ls -A '") + dir + "' | wc -l";
    FILE* p = popen(l.c_str(), "r");
    size_t n = 0;
    if (fscanf(p, "%zu", &n) != 1) n = SIZE_MAX;
    pclose(p);
    return n;
}

}  // namespace

TEST_CASE("maildir: unique names carry S= and W= and differ", "[maildir]") {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        std::string n = maildir::unique_name(10, 12, "mx.example.test");
        CHECK(seen.insert(n).second);
        CHECK(n.find("P" + std::to_string(getpid()) + "Q") != std::string::npos);
        CHECK(n.find(".mx.example.test,S=10,W=12") != std::string::npos);
        CHECK(n.find(':') == std::string::npos);
        auto info = maildir::parse_name(n);
        REQUIRE(info.ok());
        CHECK(info->size == 10u);
        CHECK(info->vsize == 12u);
        CHECK_FALSE(info->has_info);
    }
}

TEST_CASE("maildir: the host part is escaped", "[maildir]") {
    CHECK(maildir::escape_host("a/b:c,d") == "a\\057b\\072c\\054d");
    // A NUL would cut the path open(2) sees: it and other control bytes are escaped too.
    CHECK(maildir::escape_host(std::string_view("a\0b\n", 4)) == "a\\000b\\012");
    std::string n = maildir::unique_name(1, 2, "evil:host/x,S=99");
    CHECK(n.find(':') == std::string::npos);
    CHECK(n.find('/') == std::string::npos);
    auto info = maildir::parse_name(n);
    REQUIRE(info.ok());
    CHECK(info->size == 1u);  // the forged ",S=99" in the host did not become a field
    CHECK(info->vsize == 2u);
}

TEST_CASE("maildir: the base name stays within 60 characters with a long hostname", "[maildir]") {
    std::string host(100, 'h');
    host.replace(0, 12, "mx01.example");
    std::string n = maildir::unique_name(10, 12, host);
    auto info = maildir::parse_name(n);
    REQUIRE(info.ok());
    INFO(n);
    CHECK(info->base.size() <= maildir::kMaxBaseLength);
    CHECK(info->base == n.substr(0, n.find(',')));
    CHECK(info->base.find(".mx01.example") != std::string::npos);  // the host's leading characters stay
    CHECK(info->size == 10u);
    CHECK(info->vsize == 12u);
    // The shortened host ends in '-' and 8 hex digits of a hash of the whole name: another long host
    // with the same leading characters gets another one.
    std::string h1 = maildir::short_host(host, 30), h2 = maildir::short_host(host + "x", 30);
    CHECK(h1.size() == 30);
    CHECK(h1.substr(0, 21) == host.substr(0, 21));
    CHECK(h1[21] == '-');
    CHECK(h1.find_first_not_of("0123456789abcdef", 22) == std::string::npos);
    CHECK(h1 != h2);
    CHECK(h1 == maildir::short_host(host, 30));  // stable
    // A host that fits is only escaped.
    CHECK(maildir::short_host("mx.example.test", 15) == "mx.example.test");
    CHECK(maildir::short_host("a/b", 6) == "a\\057b");
    // Escapes count: "a/b/c/d/e/f" is 26 characters escaped, so 20 do not hold it.
    CHECK(maildir::short_host("a/b/c/d/e/f", 20).size() == 20);
    for (size_t len : {1u, 30u, 33u, 34u, 60u, 100u, 255u}) {
        std::string b = maildir::parse_name(maildir::unique_name(1, 2, std::string(len, 'x')))->base;
        INFO(len);
        CHECK(b.size() <= maildir::kMaxBaseLength);
    }
}

TEST_CASE("maildir: CRLF size of a message with n lines", "[maildir]") {
    for (size_t lines : {0u, 1u, 2u, 10u, 1000u}) {
        std::string msg;
        for (size_t i = 0; i < lines; ++i) msg += "line " + std::to_string(i) + "\n";
        INFO(lines);
        CHECK(maildir::crlf_size(msg) == msg.size() + lines);
    }
    CHECK(maildir::crlf_size("") == 0);
    CHECK(maildir::crlf_size("no newline") == 10);
    CHECK(maildir::crlf_size("a\r\nb\n") == 6);  // a CRLF already there is not doubled
    CHECK(maildir::crlf_size("\n\n") == 4);
}

TEST_CASE("maildir: octets a line-ending sender adds after the last line", "[maildir]") {
    CHECK(maildir::unterminated_octets("") == 0);
    CHECK(maildir::unterminated_octets("a\n") == 0);
    CHECK(maildir::unterminated_octets("a\r\n") == 0);
    CHECK(maildir::unterminated_octets("a\nb") == 2);
    CHECK(maildir::unterminated_octets("a\r") == 1);
}

TEST_CASE("maildir: name parser table", "[maildir]") {
    struct Row {
        const char* name;
        bool ok;
        const char* unique;
        const char* base;
        std::optional<uint64_t> s, w;
        bool has_info;
        const char* flags;
    };
    const Row rows[] = {
        {"1700000000.M1P2Q3.host,S=100,W=104", true, "1700000000.M1P2Q3.host,S=100,W=104", "1700000000.M1P2Q3.host", 100, 104, false, ""},
        {"1700000000.M1P2Q3.host,S=100,W=104:2,", true, "1700000000.M1P2Q3.host,S=100,W=104", "1700000000.M1P2Q3.host", 100, 104, true, ""},
        {"1700000000.M1P2Q3.host,S=100,W=104:2,RS", true, "1700000000.M1P2Q3.host,S=100,W=104", "1700000000.M1P2Q3.host", 100, 104, true, "RS"},
        {"1700000000.M1P2Q3.host,W=7,S=5:2,FRST", true, "1700000000.M1P2Q3.host,W=7,S=5", "1700000000.M1P2Q3.host", 5, 7, true, "FRST"},
        {"1700000000.12345.host", true, "1700000000.12345.host", "1700000000.12345.host", std::nullopt, std::nullopt, false, ""},
        {"1700000000.12345.host:2,S", true, "1700000000.12345.host", "1700000000.12345.host", std::nullopt, std::nullopt, true, "S"},
        {"1700000000.12345.host,S=9", true, "1700000000.12345.host,S=9", "1700000000.12345.host", 9, std::nullopt, false, ""},
        {"1700000000.1.host,S=1,X=foo,W=2", true, "1700000000.1.host,S=1,X=foo,W=2", "1700000000.1.host", 1, 2, false, ""},
        {"1700000000.1.host:1,experimental", true, "1700000000.1.host", "1700000000.1.host", std::nullopt, std::nullopt, false, ""},
        {"1.1.h,S=18446744073709551615", true, "1.1.h,S=18446744073709551615", "1.1.h", UINT64_MAX, std::nullopt, false, ""},
        {"1.1.h,S=18446744073709551616", false, "", "", {}, {}, false, ""},   // overflow
        {"1.1.h,S=000000000000000000001", false, "", "", {}, {}, false, ""},  // 21 digits: over the limit
        {"1.1.h,S=", false, "", "", {}, {}, false, ""},
        {"1.1.h,S=12x", false, "", "", {}, {}, false, ""},
        {"1.1.h,W=-1", false, "", "", {}, {}, false, ""},
        {"", false, "", "", {}, {}, false, ""},
        {".hidden", false, "", "", {}, {}, false, ""},
        {":2,S", false, "", "", {}, {}, false, ""},
        {"a/b", false, "", "", {}, {}, false, ""},
        {",S=5", false, "", "", {}, {}, false, ""},     // empty base name
        {",S=5:2,S", false, "", "", {}, {}, false, ""},
    };
    for (const auto& r : rows) {
        INFO(r.name);
        auto info = maildir::parse_name(r.name);
        REQUIRE(info.ok() == r.ok);
        if (!r.ok) continue;
        CHECK(info->unique == r.unique);
        CHECK(info->base == r.base);
        CHECK(info->size == r.s);
        CHECK(info->vsize == r.w);
        CHECK(info->has_info == r.has_info);
        CHECK(info->flags == r.flags);
    }
}

TEST_CASE("maildir: name length limit", "[maildir]") {
    std::string at_limit(maildir::kMaxNameLength, 'a');
    CHECK(maildir::parse_name(at_limit).ok());
    CHECK_FALSE(maildir::parse_name(at_limit + "a").ok());
}

TEST_CASE("maildir: account_maildir", "[maildir]") {
    auto p = maildir::account_maildir("/var/mail/ferry", "Demo@Example.TEST");
    REQUIRE(p.ok());
    CHECK(*p == "/var/mail/ferry/example.test/demo/Maildir");
    CHECK_FALSE(maildir::account_maildir("/m", "../x@example.test").ok());
    CHECK_FALSE(maildir::account_maildir("/m", "a/b@example.test").ok());
    CHECK_FALSE(maildir::account_maildir("/m", "x@..").ok());
    CHECK_FALSE(maildir::account_maildir("/m", "nodomain").ok());
}

TEST_CASE("maildir: deliver into a temporary directory", "[maildir]") {
    TempDir tmp;
    std::string md = tmp.path + "/example.test/demo/Maildir";
    std::string msg = "Subject: hi\n\nline one\nline two\n";
    auto name = maildir::deliver(md, msg, "mx.test");
    REQUIRE(name.ok());
    mode_t mode = 0;
    for (const char* sub : {"cur", "new", "tmp"}) {
        INFO(sub);
        CHECK(is_dir(md + "/" + sub, &mode));
        CHECK(mode == 0700);
    }
    CHECK(slurp(md + "/new/" + *name) == msg);
    CHECK(count_files(md + "/tmp") == 0);
    CHECK(count_files(md + "/new") == 1);
    auto info = maildir::parse_name(*name);
    REQUIRE(info.ok());
    CHECK(info->size == msg.size());
    CHECK(info->vsize == msg.size() + 4);

    SECTION("a second delivery gets another name") {
        auto name2 = maildir::deliver(md, msg, "mx.test");
        REQUIRE(name2.ok());
        CHECK(*name2 != *name);
        CHECK(count_files(md + "/new") == 2);
    }
    SECTION("list sees new/ and cur/ with their sizes") {
        REQUIRE(rename((md + "/new/" + *name).c_str(), (md + "/cur/" + *name + ":2,S").c_str()) == 0);
        std::string_view parts[] = {"Return-Path: <a@b>\n", "x\n"};
        auto d = maildir::Delivery::begin(md, parts, "mx.test");
        REQUIRE(d.ok());
        REQUIRE(d->commit().ok());
        // A file without S=/W= (as another MDA might write) gets its CRLF size computed.
        std::ofstream(md + "/new/1700000000.12345.other") << "a\nb\n";
        auto l = maildir::list(md);
        REQUIRE(l.ok());
        REQUIRE(l->size() == 3);
        for (const auto& e : *l) {
            INFO(e.name);
            CHECK(e.size == slurp(e.path).size());
            CHECK(e.vsize == maildir::crlf_size(slurp(e.path)));
            CHECK(e.unterminated == 0);
            if (e.name.find(":2,S") != std::string::npos) {
                CHECK_FALSE(e.in_new);
                CHECK(e.info.flags == "S");
                CHECK(e.info.unique == *name);
                CHECK(e.info.base == name->substr(0, name->find(',')));
            } else {
                CHECK(e.in_new);
            }
        }
    }
}

TEST_CASE("maildir: parts are concatenated and sized across boundaries", "[maildir]") {
    TempDir tmp;
    std::string md = tmp.path + "/Maildir";
    REQUIRE(maildir::ensure(md).ok());
    std::string_view parts[] = {"a\r", "\nb\n"};  // the CR of the first part belongs to the LF of the second
    auto d = maildir::Delivery::begin(md, parts, "h");
    REQUIRE(d.ok());
    auto info = maildir::parse_name(d->name());
    REQUIRE(info.ok());
    CHECK(info->size == 5u);
    CHECK(info->vsize == 6u);
}

// Both kinds of tmp/ file: unnamed (O_TMPFILE, the default) and named (file systems without it).
struct TmpFileKind {
    bool unnamed = GENERATE(true, false);
    TmpFileKind() { maildir::use_unnamed_tmp_files(unnamed); }
    ~TmpFileKind() { maildir::use_unnamed_tmp_files(true); }
    size_t tmp_names() const { return unnamed ? 0 : 1; }  // what tmp/ lists while a delivery is open
};

TEST_CASE("maildir: an uncommitted delivery leaves nothing behind", "[maildir]") {
    TmpFileKind kind;
    INFO("unnamed tmp/ files: " << kind.unnamed);
    TempDir tmp;
    std::string md = tmp.path + "/Maildir";
    REQUIRE(maildir::ensure(md).ok());
    {
        std::string_view parts[] = {"x\n"};
        auto d = maildir::Delivery::begin(md, parts, "h");
        REQUIRE(d.ok());
        CHECK(count_files(md + "/tmp") == kind.tmp_names());  // written and fsync'd, not yet visible
        CHECK(count_files(md + "/new") == 0);
        char buf[8];
        auto n = d->read_at(0, buf, sizeof buf);
        REQUIRE(n.ok());
        CHECK(std::string(buf, *n) == "x\n");
    }
    CHECK(count_files(md + "/tmp") == 0);
    CHECK(count_files(md + "/new") == 0);
}

// The two halves of commit() that a commit stage runs around one fsync of new/ for several messages.
TEST_CASE("maildir: link then settle publishes; a failed directory fsync takes the name back", "[maildir]") {
    TmpFileKind kind;
    INFO("unnamed tmp/ files: " << kind.unnamed);
    TempDir tmp;
    std::string md = tmp.path + "/Maildir";
    REQUIRE(maildir::ensure(md).ok());
    auto sealed = [&](std::string_view text) {
        auto d = maildir::Delivery::create(md, "h");
        REQUIRE(d.ok());
        REQUIRE(d->append(text).ok());
        REQUIRE(d->sync().ok());
        return std::move(d.value());
    };
    auto ok = sealed("ok\n");
    auto dir = ok.link();
    REQUIRE(dir.ok());
    CHECK(*dir == md + "/new");
    CHECK(count_files(md + "/new") == 1);  // linked, a tmp/ name still there until it settles
    CHECK(count_files(md + "/tmp") == kind.tmp_names());
    CHECK_FALSE(ok.link().ok());  // once only
    auto name = ok.settle(Result<void>());
    REQUIRE(name.ok());
    CHECK(*name == ok.name());
    CHECK(slurp(md + "/new/" + *name) == "ok\n");
    CHECK(count_files(md + "/tmp") == 0);
    CHECK_FALSE(ok.settle(Result<void>()).ok());

    auto bad = sealed("bad\n");
    REQUIRE(bad.link().ok());
    std::string note;
    auto failed = bad.settle(make_error(0, "", "fsync failed"), &note);
    CHECK_FALSE(failed.ok());
    CHECK(note.empty());
    CHECK(count_files(md + "/new") == 1);  // only the first one: the second counts nowhere
    CHECK(count_files(md + "/tmp") == 0);

    // A reader took the message to cur/ before the fsync failed: it was seen, so it was delivered.
    auto seen = sealed("seen\n");
    REQUIRE(seen.link().ok());
    REQUIRE(rename((md + "/new/" + seen.name()).c_str(), (md + "/cur/" + seen.name() + ":2,S").c_str()) == 0);
    auto kept = seen.settle(make_error(0, "", "fsync failed"), &note);
    REQUIRE(kept.ok());
    CHECK(note.find("a reader had already taken") != std::string::npos);
    CHECK(count_files(md + "/cur") == 1);
}

TEST_CASE("maildir: delivery errors are values", "[maildir]") {
    TempDir tmp;
    std::string md = tmp.path + "/Maildir";
    REQUIRE(maildir::ensure(md).ok());
    REQUIRE(system(("rmdir '" + md + "/tmp' && touch '" + md + "/tmp'").c_str()) == 0);  // tmp is not a directory
    auto r = maildir::deliver(md, "x\n", "h");
    CHECK_FALSE(r.ok());
    CHECK(count_files(md + "/new") == 0);
}

TEST_CASE("maildir: names of one mtime tick order as they were made, digit runs as numbers", "[maildir]") {
    struct Row {
        const char* a;
        const char* b;
        bool a_first;
    };
    const Row rows[] = {
        {"1700000000.M99999P7Q1.h", "1700000000.M100003P7Q2.h", true},  // microseconds past a power of ten
        {"1700000000.M100003P7Q2.h", "1700000000.M99999P7Q1.h", false},
        {"1700000000.M5P7Q9.h", "1700000000.M5P7Q10.h", true},  // the process's counter past a power of ten
        {"999999999.M0P1Q1.h", "1000000000.M0P1Q1.h", true},    // seconds gaining a digit
        {"1.M5P7Q1.a", "1.M5P7Q1.b", true},                     // then the host as text
        {"1.M5P7Q1.a", "1.M5P7Q1.a", false},                    // a name is not before itself
        {"1.M5P7Q1.h", "1.M5P7Q1.h2", true},                    // a prefix first
        {"1.M05P7Q1.h", "1.M5P7Q1.h", true},                    // equal numbers: a fixed order by text
        {"1.M5P7Q1.h", "1.M05P7Q1.h", false},
        {"x", "1", false},                                      // not a Maildir name: byte order
        {"", "1", true},
    };
    for (const auto& r : rows) {
        INFO(r.a << " vs " << r.b);
        CHECK(maildir::made_before(r.a, r.b) == r.a_first);
    }
}

TEST_CASE("maildir: list of a missing Maildir is empty", "[maildir]") {
    auto l = maildir::list("/nonexistent/ferry/Maildir");
    REQUIRE(l.ok());
    CHECK(l->empty());
}

TEST_CASE("maildir: stale tmp files are removed after 36 hours", "[maildir]") {
    TempDir tmp;
    std::string md = tmp.path + "/Maildir";
    REQUIRE(maildir::ensure(md).ok());
    std::ofstream(md + "/tmp/old") << "x";
    std::ofstream(md + "/tmp/fresh") << "y";
    std::ofstream(md + "/tmp/almost") << "z";
    auto age = [&](const char* f, long seconds) {
        timeval tv[2];
        gettimeofday(&tv[0], nullptr);
        tv[0].tv_sec -= seconds;
        tv[1] = tv[0];
        REQUIRE(utimes((md + "/tmp/" + f).c_str(), tv) == 0);
    };
    age("old", 36 * 3600 + 60);
    age("almost", 36 * 3600 - 60);
    CHECK(maildir::cleanup_tmp(md) == 1);
    CHECK(count_files(md + "/tmp") == 2);
}

TEST_CASE("maildir: W= of a delivery written in pieces counts each bare LF twice, across any split", "[maildir]") {
    TempDir tmp;
    std::string md = tmp.path + "/Maildir";
    REQUIRE(maildir::ensure(md).ok());
    const std::string text = "Subject: a\r\n\nb\r\n\n\nc\rd\r\n\r\ne\n" + std::string(300, 'x') + "\n";
    for (size_t piece : {1u, 2u, 3u, 7u, 64u, 1000u}) {
        auto d = maildir::Delivery::create(md, "h");
        REQUIRE(d.ok());
        for (size_t at = 0; at < text.size(); at += piece) REQUIRE(d->append(std::string_view(text).substr(at, piece)).ok());
        REQUIRE(d->sync().ok());
        auto info = maildir::parse_name(d->name());
        REQUIRE(info.ok());
        INFO(piece);
        CHECK(info->size == text.size());
        CHECK(info->vsize == maildir::crlf_size(text));
        CHECK(*info->vsize == text.size() + 5);  // the five LFs without a CR before them
    }
}

TEST_CASE("maildir: copies into another folder are hard links under fresh names in cur/ with their flags",
          "[maildir]") {
    TempDir tmp;
    std::string from = tmp.path + "/Maildir", to = tmp.path + "/Maildir/.Archive";
    REQUIRE(maildir::ensure(from).ok());
    REQUIRE(maildir::ensure(to).ok());
    auto a = maildir::deliver(from, "Subject: a\n\none\n", "h");
    REQUIRE(a.ok());
    // A name another program gave, without S= and W=: the copy's sizes are read from the file.
    test::write_text(from + "/cur/1700000000.other.host:2,S", "x\ny\n");
    Fd fa(::open((from + "/new/" + *a).c_str(), O_RDONLY | O_CLOEXEC));
    Fd fb(::open((from + "/cur/1700000000.other.host:2,S").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE((fa.valid() && fb.valid()));
    std::vector<maildir::CopySource> sources = {{fa.get(), *a, "FS"}, {fb.get(), "1700000000.other.host:2,S", ""}};
    auto made = maildir::copy_messages(to, sources, "h");
    REQUIRE(made.ok());
    REQUIRE(made->size() == 2);
    auto ia = maildir::parse_name((*made)[0]);
    auto ib = maildir::parse_name((*made)[1]);
    REQUIRE((ia.ok() && ib.ok()));
    CHECK(ia->flags == "FS");
    CHECK(ib->has_info);
    CHECK(ib->flags.empty());
    CHECK(ia->base != maildir::parse_name(*a)->base);
    CHECK(ia->size == maildir::parse_name(*a)->size);
    CHECK(ib->size == 4u);
    CHECK(ib->vsize == 6u);
    CHECK(slurp(to + "/cur/" + (*made)[0]) == "Subject: a\n\none\n");
    struct stat s1 {}, s2 {};
    REQUIRE(::stat((from + "/new/" + *a).c_str(), &s1) == 0);
    REQUIRE(::stat((to + "/cur/" + (*made)[0]).c_str(), &s2) == 0);
    CHECK(s1.st_ino == s2.st_ino);  // one file, two names
    CHECK(count_files(to + "/new") == 0);
    CHECK(count_files(to + "/tmp") == 0);
}

TEST_CASE("maildir: a copy that cannot be made leaves none of the batch behind", "[maildir]") {
    TempDir tmp;
    std::string from = tmp.path + "/Maildir", to = tmp.path + "/Maildir/.Gone";
    REQUIRE(maildir::ensure(from).ok());
    auto a = maildir::deliver(from, "Subject: a\n\none\n", "h");
    REQUIRE(a.ok());
    Fd fa(::open((from + "/new/" + *a).c_str(), O_RDONLY | O_CLOEXEC));
    std::vector<maildir::CopySource> sources = {{fa.get(), *a, ""}};
    CHECK_FALSE(maildir::copy_messages(to, sources, "h").ok());  // no such folder
    REQUIRE(maildir::ensure(to).ok());
    sources.push_back({-1, "1700000001.bad.host", ""});  // the second cannot be read: the first goes again
    CHECK_FALSE(maildir::copy_messages(to, sources, "h").ok());
    CHECK(count_files(to + "/cur") == 0);
}
