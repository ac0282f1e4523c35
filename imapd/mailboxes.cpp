// The mailbox commands of a session: LIST, LSUB, CREATE, DELETE, RENAME, (UN)SUBSCRIBE and STATUS.
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

#include "common/base/log.hpp"
#include "common/mail/imap_body.hpp"
#include "common/store/folders.hpp"
#include "common/store/index.hpp"
#include "common/store/maildir.hpp"
#include "imapd/list_match.hpp"
#include "imapd/mutf7.hpp"
#include "imapd/server.hpp"
#include "imapd/session.hpp"

namespace ferry::imap {

// The name as the wire spells it: modified UTF-7, quoted.
std::string wire_name(const std::string& utf8) {
    std::string out;
    mail::append_imap_string(out, mutf7_encode(utf8).value_or(utf8));
    return out;
}

namespace {

// The messages no IMAP session has seen yet (RFC 3501 \Recent); STATUS takes none of them.
size_t recent_of(const store::Index& index) {
    const auto& msgs = index.messages();
    return static_cast<size_t>(std::count_if(msgs.begin(), msgs.end(),
                                             [&](const store::Message& m) { return m.uid > index.recent_upto(); }));
}


// Whether an entry below `name` (of a map by name) satisfies `pred`: an existing child gives
// \HasChildren, a subscribed one CHILDINFO ("SUBSCRIBED") (RFC 5258).
template <typename Map, typename Pred>
bool any_below(const Map& entries, const std::string& name, Pred pred) {
    std::string prefix = name + "/";
    for (auto it = entries.lower_bound(prefix); it != entries.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
        if (pred(it->first, it->second)) return true;
    return false;
}

// RFC 8438 SIZE: the messages' sizes with CRLF, from W= in their names (as ferry-mda and Dovecot
// write it), else the file's size.
uint64_t total_size(const std::string& maildir, const std::vector<store::Message>& msgs) {
    uint64_t total = 0;
    for (const auto& m : msgs) {
        std::string_view file = m.file;
        auto name = maildir::parse_name(file.substr(file.find('/') + 1));
        struct stat st;
        if (name && name->vsize) total += *name->vsize;
        else if (!m.file.empty() && ::stat((maildir + "/" + m.file).c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
    }
    return total;
}

}  // namespace

std::optional<std::string> Session::folder_name(const std::string& wire) {
    if (store::is_inbox(wire)) return std::string("INBOX");
    auto name = mutf7_decode(wire);
    if (!name || !store::check_folder_name(*name)) {
        tagged("NO", "[CANNOT] invalid mailbox name");
        return std::nullopt;
    }
    return name;
}

bool Session::folder_exists(const std::string& name) {
    auto path = store::folder_path(root_, name);
    struct stat st;
    return path && ::stat((*path + "/cur").c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The index a session of this process holds (synced) saves reading the whole index file again and
// listing the Maildir for each STATUS, which clients send for the selected folder too.
Result<std::shared_ptr<store::Index>> Session::open_synced(const std::string& name) {
    auto path = store::folder_path(root_, name);
    if (!path) return path.error();
    if (auto held = server_.held_index(*path)) return held;
    auto index = store::Index::open(*path);
    if (!index) return index.error();
    if (auto r = index->sync(); !r) return r.error();
    return server_.share_index(std::move(index.value()));
}

// One name a LIST considers: a folder, a missing parent of one, or a subscription without folder.
struct ListEntry {
    bool exists = false, subscribed = false;
    std::string special_use;
};

void Session::cmd_list(const Command& cmd) {
    const auto& a = std::get<ListArgs>(cmd.args);
    if (a.patterns.size() == 1 && a.patterns[0].empty()) {
        // RFC 9051 section 6.3.9: the hierarchy delimiter and the root of the reference.
        reply("* LIST (\\Noselect) \"/\" \"\"\r\n");
        return tagged("OK", "LIST completed");
    }
    auto folders = store::list_folders(root_);
    auto subs = store::subscriptions(root_);
    if (!folders || !subs) return tagged("NO", "[SERVERBUG] cannot list the mailboxes");
    std::map<std::string, ListEntry> entries;
    for (const auto& f : *folders) entries[f.name] = ListEntry{true, false, f.special_use};
    for (const auto& s : *subs) entries[s].subscribed = true;
    // A folder "A/B" without "A" still shows "A": \NonExistent to a LIST-EXTENDED command (RFC 5258
    // section 3), \Noselect to an RFC 3501 LIST, whose clients (mbsync) know no other.
    std::vector<std::string> parents;
    for (const auto& [n, e] : entries)
        for (size_t i = n.find('/'); i != std::string::npos; i = n.find('/', i + 1))
            if (!entries.count(n.substr(0, i))) parents.push_back(n.substr(0, i));
    for (const auto& p : parents) entries.try_emplace(p);
    std::string out;
    for (const auto& [name, e] : entries) {
        if (!list_matches(a, name)) continue;
        bool children = any_below(entries, name, [](const std::string&, const ListEntry& x) { return x.exists; });
        bool chosen = (!a.subscribed || e.subscribed) && (!a.special_use_sel || !e.special_use.empty());
        // RFC 5258 section 3.5: RECURSIVEMATCH also names a parent of a chosen child that the
        // patterns do not match (a matched child is listed itself), with CHILDINFO.
        bool childinfo = a.recursive_match && a.subscribed &&
                         any_below(entries, name, [&](const std::string& n, const ListEntry& x) {
                             return x.subscribed && !list_matches(a, n);
                         });
        if (!chosen && !childinfo) continue;
        // A name that is no folder is listed as the parent of one, or for SUBSCRIBED.
        if (!e.exists && !children && !a.subscribed) continue;
        std::string attrs;
        auto attr = [&](const std::string& x) { attrs += (attrs.empty() ? "" : " ") + x; };
        if (!e.exists) attr(a.extended ? "\\NonExistent" : "\\Noselect");
        attr(children ? "\\HasChildren" : "\\HasNoChildren");
        if (e.exists && !e.special_use.empty()) attr(e.special_use);
        if (e.subscribed && (a.subscribed || a.ret_subscribed)) attr("\\Subscribed");
        out += "* LIST (" + attrs + ") \"/\" " + wire_name(name);
        if (childinfo) out += " (\"CHILDINFO\" (\"SUBSCRIBED\"))";
        out += "\r\n";
        if (!a.ret_status.empty() && e.exists) out += list_status(name, a.ret_status);
    }
    reply(out);
    tagged("OK", "LIST completed");
}

// RFC 5819: the STATUS of a listed mailbox after its LIST line; nothing when it cannot be read.
std::string Session::list_status(const std::string& name, const std::vector<StatusItem>& items) {
    auto index = open_synced(name);
    if (!index) {
        log::warnx("%s: LIST-STATUS %s: %s", id_.c_str(), name.c_str(), index.error().what().c_str());
        return "";
    }
    return "* STATUS " + wire_name(name) + " (" + status_items(**index, items) + ")\r\n";
}

bool Session::list_matches(const ListArgs& a, const std::string& utf8) const {
    std::string wire = mutf7_encode(utf8).value_or(utf8);
    return std::any_of(a.patterns.begin(), a.patterns.end(),
                       [&](const std::string& p) { return list_match(a.reference + p, wire); });
}

void Session::cmd_lsub(const Command& cmd) {
    const auto& a = std::get<LsubArgs>(cmd.args);
    auto subs = store::subscriptions(root_);
    if (!subs) return tagged("NO", "[SERVERBUG] cannot read the subscriptions");
    std::string out;
    std::string pattern = a.reference + a.pattern;
    std::set<std::string> subscribed(subs->begin(), subs->end()), parents;
    for (const auto& name : *subs) {
        std::string wire = mutf7_encode(name).value_or(name);
        if (list_match(pattern, wire))
            out += std::string("* LSUB (") + (folder_exists(name) ? "" : "\\Noselect") + ") \"/\" " + wire_name(name) + "\r\n";
        // RFC 3501 section 6.3.9: "%" shows an unsubscribed parent of a subscribed name as \Noselect.
        if (pattern.find('%') == std::string::npos) continue;
        for (size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1)) {
            std::string parent = name.substr(0, slash);
            if (!subscribed.count(parent) && list_match(pattern, mutf7_encode(parent).value_or(parent)) &&
                parents.insert(parent).second)
                out += "* LSUB (\\Noselect) \"/\" " + wire_name(parent) + "\r\n";
        }
    }
    reply(out);
    tagged("OK", "LSUB completed");
}

void Session::cmd_create(const Command& cmd) {
    const auto& a = std::get<MailboxArgs>(cmd.args);
    std::string wire = a.mailbox;
    // RFC 9051 section 6.3.4: a trailing delimiter only says that names will be created below.
    while (!wire.empty() && wire.back() == '/') wire.pop_back();
    auto name = folder_name(wire);
    if (!name) return;
    if (*name == "INBOX" || folder_exists(*name)) return tagged("NO", "[ALREADYEXISTS] mailbox already exists");
    if (a.use.size() > 1) return tagged("NO", "[USEATTR] one special use per mailbox");
    if (auto r = store::create_folder(root_, *name, a.use.empty() ? "" : a.use[0]); !r) {
        log::info("%s: CREATE %s: %s", id_.c_str(), name->c_str(), r.error().what().c_str());
        return tagged("NO", "[CANNOT] " + r.error().text);
    }
    tagged("OK", "CREATE completed");
}

void Session::cmd_delete(const Command& cmd) {
    auto name = folder_name(std::get<MailboxArgs>(cmd.args).mailbox);
    if (!name) return;
    if (*name == "INBOX") return tagged("NO", "[CANNOT] INBOX cannot be deleted");
    if (!folder_exists(*name)) return tagged("NO", "[NONEXISTENT] no such mailbox");
    if (auto r = store::delete_folder(root_, *name); !r) {
        log::info("%s: DELETE %s: %s", id_.c_str(), name->c_str(), r.error().what().c_str());
        return tagged("NO", "[CANNOT] " + r.error().text);
    }
    tagged("OK", "DELETE completed");
}

void Session::cmd_rename(const Command& cmd) {
    const auto& a = std::get<RenameArgs>(cmd.args);
    auto from = folder_name(a.from);
    if (!from) return;
    auto to = folder_name(a.to);
    if (!to) return;
    if (!folder_exists(*from)) return tagged("NO", "[NONEXISTENT] no such mailbox");
    if (*to == "INBOX" || folder_exists(*to)) return tagged("NO", "[ALREADYEXISTS] mailbox already exists");
    if (auto r = store::rename_folder(root_, *from, *to); !r) {
        log::info("%s: RENAME %s %s: %s", id_.c_str(), from->c_str(), to->c_str(), r.error().what().c_str());
        return tagged("NO", "[CANNOT] " + r.error().text);
    }
    tagged("OK", "RENAME completed");
}

void Session::cmd_subscribe(const Command& cmd, bool on) {
    auto name = folder_name(std::get<MailboxArgs>(cmd.args).mailbox);
    if (!name) return;
    if (auto r = store::subscribe(root_, *name, on); !r) {
        log::warnx("%s: %s: %s", id_.c_str(), cmd.name.c_str(), r.error().what().c_str());
        return tagged("NO", "[SERVERBUG] cannot change the subscriptions");
    }
    tagged("OK", cmd.name + " completed");
}

// The STATUS data items of a mailbox (RFC 9051 section 6.3.11), "MESSAGES 3 UIDNEXT 4".
std::string Session::status_items(const store::Index& index, const std::vector<StatusItem>& wanted) const {
    const auto& msgs = index.messages();
    auto count = [&](char letter, bool with) {
        return std::count_if(msgs.begin(), msgs.end(), [&](const store::Message& m) {
            return (m.flags.find(letter) != std::string::npos) == with;
        });
    };
    std::string items;
    auto add = [&](const char* key, uint64_t n) {
        items += (items.empty() ? "" : " ") + std::string(key) + " " + std::to_string(n);
    };
    for (StatusItem item : wanted) {
        switch (item) {
            case StatusItem::messages: add("MESSAGES", msgs.size()); break;
            case StatusItem::recent: add("RECENT", recent_of(index)); break;
            case StatusItem::uidnext: add("UIDNEXT", index.uidnext()); break;
            case StatusItem::uidvalidity: add("UIDVALIDITY", index.uidvalidity()); break;
            case StatusItem::unseen: add("UNSEEN", count(store::kSeen, false)); break;
            case StatusItem::deleted: add("DELETED", count(store::kDeleted, true)); break;
            case StatusItem::highestmodseq: add("HIGHESTMODSEQ", index.highest_modseq()); break;
            case StatusItem::size: add("SIZE", total_size(index.maildir(), msgs)); break;
            case StatusItem::appendlimit: break;  // APPENDLIMIT is not advertised
        }
    }
    return items;
}

void Session::cmd_status(const Command& cmd) {
    const auto& a = std::get<StatusArgs>(cmd.args);
    auto name = folder_name(a.mailbox);
    if (!name) return;
    // Index::open creates a missing Maildir: a STATUS of an unknown name must not.
    if (!folder_exists(*name)) return tagged("NO", "[NONEXISTENT] no such mailbox");
    auto index = open_synced(*name);
    if (!index) {
        log::warnx("%s: STATUS %s: %s", id_.c_str(), name->c_str(), index.error().what().c_str());
        return tagged("NO", "[SERVERBUG] cannot read the mailbox");
    }
    if (std::count(a.items.begin(), a.items.end(), StatusItem::highestmodseq)) condstore_ = true;  // RFC 7162 section 3.1
    reply("* STATUS " + wire_name(*name) + " (" + status_items(**index, a.items) + ")\r\n");
    tagged("OK", "STATUS completed");
}

}  // namespace ferry::imap
