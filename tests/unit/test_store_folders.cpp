// Unit tests of Maildir++ folders: names, create, delete, rename, subscriptions, default folders.
#include <catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "common/store/folders.hpp"
#include "common/store/index.hpp"
#include "common/store/maildir.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using namespace ferry::store;
using test::TempDir;

namespace {

std::vector<std::string> names(const std::string& root) {
    auto l = list_folders(root);
    REQUIRE(l);
    std::vector<std::string> out;
    for (const auto& f : *l) out.push_back(f.name);
    return out;
}

}  // namespace

TEST_CASE("store folders: names map to Maildir++ directories", "[store]") {
    auto p = folder_path("/m", "Archive/2026");
    REQUIRE(p);
    CHECK(*p == "/m/.Archive.2026");
    CHECK(*folder_path("/m", "inbox") == "/m");
    CHECK(*folder_path("/m", "Entw\xC3\xBC" "rfe") == "/m/.Entw\xC3\xBC" "rfe");
    const char* bad[] = {"", "/a", "a/", "a//b", "a.b", "..", "a\nb", "bad\xC3", "\xC0\xAF", "\xED\xA0\x80"};
    for (const char* b : bad) {
        INFO(b);
        CHECK_FALSE(folder_path("/m", b));
    }
    CHECK_FALSE(check_folder_name(std::string(kMaxFolderName + 1, 'a')));
    CHECK(check_folder_name(std::string(kMaxFolderName, 'a')));
}

TEST_CASE("store folders: a new account gets the default folders with SPECIAL-USE, once", "[store]") {
    TempDir t;
    std::string root = t.path + "/Maildir";
    REQUIRE(ensure_account(root));
    auto l = list_folders(root);
    REQUIRE(l);
    std::vector<std::pair<std::string, std::string>> got;
    for (const auto& f : *l) {
        got.emplace_back(f.name, f.special_use);
        CHECK(f.subscribed);
    }
    CHECK(got == std::vector<std::pair<std::string, std::string>>{{"INBOX", ""},
                                                                   {"Archive", "\\Archive"},
                                                                   {"Drafts", "\\Drafts"},
                                                                   {"Junk", "\\Junk"},
                                                                   {"Sent", "\\Sent"},
                                                                   {"Trash", "\\Trash"}});
    CHECK(test::present(root + "/.Sent/cur"));
    CHECK(test::present(root + "/.Sent/maildirfolder"));
    // The user deletes Junk: a later call does not bring it back.
    REQUIRE(delete_folder(root, "Junk"));
    REQUIRE(ensure_account(root));
    CHECK_FALSE(test::present(root + "/.Junk"));
}

TEST_CASE("store folders: create, list, delete", "[store]") {
    TempDir t;
    std::string root = t.path + "/Maildir";
    REQUIRE(create_folder(root, "Archive/2026"));
    REQUIRE(create_folder(root, "Lists"));
    CHECK_FALSE(create_folder(root, "Lists"));   // exists
    CHECK_FALSE(create_folder(root, "INBOX"));
    CHECK_FALSE(create_folder(root, "a.b"));
    CHECK(names(root) == std::vector<std::string>{"INBOX", "Archive/2026", "Lists"});
    // A folder is a Maildir with its own index.
    auto path = folder_path(root, "Lists");
    REQUIRE(maildir::deliver(*path, "Subject: l\n\nx\n"));
    auto ix = Index::open(*path);
    REQUIRE(ix);
    REQUIRE(ix->sync());
    CHECK(ix->messages().size() == 1);
    REQUIRE(delete_folder(root, "Lists"));
    CHECK_FALSE(delete_folder(root, "Lists"));
    CHECK_FALSE(delete_folder(root, "INBOX"));
    CHECK(names(root) == std::vector<std::string>{"INBOX", "Archive/2026"});
    // The deleted folder is gone entirely, not parked under another name.
    for (const auto& e : std::filesystem::directory_iterator(root)) CHECK(e.path().filename().string().rfind("..", 0) != 0);
    CHECK_FALSE(test::present(root + "/.Lists"));
}

TEST_CASE("store folders: rename takes children, index and SPECIAL-USE along", "[store]") {
    TempDir t;
    std::string root = t.path + "/Maildir";
    REQUIRE(ensure_account(root));
    REQUIRE(create_folder(root, "Archive/2026"));
    auto arch = folder_path(root, "Archive");
    REQUIRE(maildir::deliver(*arch, "Subject: a\n\nx\n"));
    uint32_t validity = 0;
    {
        auto ix = Index::open(*arch);
        REQUIRE(ix);
        REQUIRE(ix->sync());
        validity = ix->uidvalidity();
    }
    REQUIRE(rename_folder(root, "Archive", "Old/Archive"));
    CHECK_FALSE(rename_folder(root, "Archive", "X"));       // gone
    CHECK_FALSE(rename_folder(root, "Sent", "Drafts"));     // target exists
    auto l = list_folders(root);
    REQUIRE(l);
    std::vector<std::string> got;
    for (const auto& f : *l) {
        got.push_back(f.name);
        if (f.name == "Old/Archive") CHECK(f.special_use == "\\Archive");
    }
    CHECK(got == std::vector<std::string>{"INBOX", "Drafts", "Junk", "Old/Archive", "Old/Archive/2026", "Sent", "Trash"});
    auto ix = Index::open(*folder_path(root, "Old/Archive"));
    REQUIRE(ix);
    CHECK(ix->uidvalidity() == validity);
    CHECK(ix->messages().size() == 1);
}

TEST_CASE("store folders: renaming INBOX moves its messages and leaves it empty", "[store]") {
    TempDir t;
    std::string root = t.path + "/Maildir";
    REQUIRE(maildir::deliver(root, "Subject: 1\n\nx\n"));
    REQUIRE(maildir::deliver(root, "Subject: 2\n\nx\n"));
    REQUIRE(rename_folder(root, "INBOX", "Before"));
    auto inbox = Index::open(root);
    REQUIRE(inbox);
    REQUIRE(inbox->sync());
    CHECK(inbox->messages().empty());
    auto moved = Index::open(*folder_path(root, "Before"));
    REQUIRE(moved);
    REQUIRE(moved->sync());
    CHECK(moved->messages().size() == 2);
}

TEST_CASE("store folders: subscriptions are kept in the subscriptions file", "[store]") {
    TempDir t;
    std::string root = t.path + "/Maildir";
    REQUIRE(subscribe(root, "Lists/ferry", true));
    REQUIRE(subscribe(root, "inbox", true));
    REQUIRE(subscribe(root, "Lists/ferry", true));  // twice is once
    CHECK(*subscriptions(root) == std::vector<std::string>{"Lists/ferry", "INBOX"});
    CHECK(test::read_text(root + "/" + kSubscriptionsFile) == "Lists/ferry\nINBOX\n");
    REQUIRE(subscribe(root, "Lists/ferry", false));
    CHECK(*subscriptions(root) == std::vector<std::string>{"INBOX"});
    CHECK_FALSE(subscribe(root, "a.b", true));
}
