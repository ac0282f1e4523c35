// Typed parsing of IMAP command arguments (RFC 9051 section 9 grammar, read from framed arguments).
#include "imapd/command.hpp"

#include <algorithm>
#include <functional>
#include <map>

#include "imapd/syntax.hpp"

namespace ferry::imap {

namespace {

using Parser = std::function<Result<void>(Cursor&, Command&, const Limits&)>;

Result<void> no_args(Cursor& c, Command&, const Limits&) { return c.end(); }

Result<void> parse_authenticate(Cursor& c, Command& cmd, const Limits&) {
    AuthenticateArgs a;
    const Arg* mech = c.next();
    if (!mech || mech->type != Arg::Type::atom || !atom_ok(mech->value, AtomKind::atom)) return bad("Missing SASL mechanism");
    a.mechanism = upper(mech->value);
    if (const Arg* ir = c.next()) {
        if (ir->type != Arg::Type::atom) return bad("Invalid initial response");
        a.initial_response = ir->value;
    }
    cmd.args = std::move(a);
    return c.end();
}

Result<void> parse_login(Cursor& c, Command& cmd, const Limits&) {
    LoginArgs a;
    if (!c.astring(a.user) || !c.astring(a.password)) return bad("LOGIN needs a user name and a password");
    cmd.args = std::move(a);
    return c.end();
}

Result<void> parse_enable(Cursor& c, Command& cmd, const Limits&) {
    EnableArgs a;
    while (const Arg* cap = c.next()) {
        if (cap->type != Arg::Type::atom || !atom_ok(cap->value, AtomKind::atom)) return bad("Invalid capability");
        a.capabilities.push_back(upper(cap->value));
    }
    if (a.capabilities.empty()) return bad("ENABLE needs a capability");
    cmd.args = std::move(a);
    return {};
}

Result<void> parse_qresync(const Arg& list, Qresync& q) {
    Cursor c(list.list);
    uint64_t v = 0;
    if (!c.number(v, 1, 0xffffffffu)) return bad("QRESYNC needs a UIDVALIDITY");
    q.uidvalidity = uint32_t(v);
    if (!c.number(q.modseq, 1, kMaxModseq)) return bad("QRESYNC needs a mod-sequence");
    if (c.peek() && c.peek()->type == Arg::Type::atom) {
        auto set = parse_sequence_set(c.next()->value);
        if (!set || set->saved) return bad("Invalid known UIDs");
        q.known_uids = std::move(*set);
    }
    if (const Arg* m = c.next()) {
        if (m->type != Arg::Type::list || m->list.size() != 2 || m->list[0].type != Arg::Type::atom || m->list[1].type != Arg::Type::atom)
            return bad("Invalid QRESYNC sequence match data");
        auto seqs = parse_sequence_set(m->list[0].value);
        auto uids = parse_sequence_set(m->list[1].value);
        if (!seqs || !uids || seqs->saved || uids->saved) return bad("Invalid QRESYNC sequence match data");
        q.seq_match.emplace(std::move(*seqs), std::move(*uids));
    }
    return c.end();
}

Result<void> parse_select(Cursor& c, Command& cmd, const Limits&) {
    SelectArgs a;
    if (!c.mailbox(a.mailbox)) return bad("Missing mailbox name");
    if (const Arg* params = c.next()) {
        if (params->type != Arg::Type::list) return bad("Invalid SELECT parameters");
        Cursor p(params->list);
        while (const Arg* name = p.next()) {
            if (name->is_atom("CONDSTORE")) {
                a.condstore = true;
            } else if (name->is_atom("QRESYNC")) {
                const Arg* ql = p.next();
                if (!ql || ql->type != Arg::Type::list) return bad("QRESYNC needs parameters");
                Qresync q;
                if (auto r = parse_qresync(*ql, q); !r) return r;
                a.qresync = std::move(q);
            } else {
                return bad("Unknown SELECT parameter");
            }
        }
    }
    cmd.args = std::move(a);
    return c.end();
}

Result<void> parse_mailbox_only(Cursor& c, Command& cmd, const Limits&) {
    MailboxArgs a;
    if (!c.mailbox(a.mailbox)) return bad("Missing mailbox name");
    if (cmd.verb == Verb::create && c.peek()) {
        // RFC 6154 section 3: CREATE name (USE (\Sent ...)).
        const Arg* params = c.next();
        if (params->type != Arg::Type::list || params->list.size() != 2 || !params->list[0].is_atom("USE") ||
            params->list[1].type != Arg::Type::list)
            return bad("Invalid CREATE parameters");
        for (const Arg& f : params->list[1].list) {
            if (f.type != Arg::Type::atom || !atom_ok(f.value, AtomKind::flag) || f.value[0] != '\\') return bad("Invalid special-use attribute");
            a.use.push_back(f.value);
        }
    }
    cmd.args = std::move(a);
    return c.end();
}

Result<void> parse_rename(Cursor& c, Command& cmd, const Limits&) {
    RenameArgs a;
    if (!c.mailbox(a.from) || !c.mailbox(a.to)) return bad("RENAME needs two mailbox names");
    cmd.args = std::move(a);
    return c.end();
}

Result<void> status_items(const Arg* list, std::vector<StatusItem>& items) {
    static const std::map<std::string, StatusItem> kItems = {
        {"MESSAGES", StatusItem::messages}, {"RECENT", StatusItem::recent}, {"UIDNEXT", StatusItem::uidnext},
        {"UIDVALIDITY", StatusItem::uidvalidity}, {"UNSEEN", StatusItem::unseen}, {"DELETED", StatusItem::deleted},
        {"SIZE", StatusItem::size}, {"HIGHESTMODSEQ", StatusItem::highestmodseq}, {"APPENDLIMIT", StatusItem::appendlimit},
    };
    if (!list || list->type != Arg::Type::list || list->list.empty()) return bad("Missing status items");
    for (const Arg& a : list->list) {
        auto it = a.type == Arg::Type::atom ? kItems.find(upper(a.value)) : kItems.end();
        if (it == kItems.end()) return bad("Unknown status item");
        items.push_back(it->second);
    }
    return {};
}

Result<void> parse_status(Cursor& c, Command& cmd, const Limits&) {
    StatusArgs a;
    if (!c.mailbox(a.mailbox)) return bad("Missing mailbox name");
    if (auto r = status_items(c.next(), a.items); !r) return r;
    cmd.args = std::move(a);
    return c.end();
}

Result<void> list_selection(const Arg& opts, ListArgs& a) {
    for (const Arg& o : opts.list) {
        if (o.is_atom("SUBSCRIBED")) a.subscribed = true;
        else if (o.is_atom("REMOTE")) a.remote = true;
        else if (o.is_atom("RECURSIVEMATCH")) a.recursive_match = true;
        else if (o.is_atom("SPECIAL-USE")) a.special_use_sel = true;
        else return bad("Unknown LIST selection option");
    }
    // RFC 5258 section 3: RECURSIVEMATCH needs another option that it modifies.
    if (a.recursive_match && !a.subscribed && !a.special_use_sel) return bad("RECURSIVEMATCH alone");
    return {};
}

Result<void> list_return(Cursor& c, ListArgs& a) {
    const Arg* opts = c.next();
    if (!opts || opts->type != Arg::Type::list) return bad("RETURN needs options");
    Cursor r(opts->list);
    while (const Arg* o = r.next()) {
        if (o->is_atom("SUBSCRIBED")) a.ret_subscribed = true;
        else if (o->is_atom("CHILDREN")) a.ret_children = true;
        else if (o->is_atom("SPECIAL-USE")) a.ret_special_use = true;
        else if (o->is_atom("STATUS")) {
            if (auto s = status_items(r.next(), a.ret_status); !s) return s;
        } else {
            return bad("Unknown LIST return option");
        }
    }
    return {};
}

Result<void> parse_list(Cursor& c, Command& cmd, const Limits&) {
    ListArgs a;
    if (c.peek() && c.peek()->type == Arg::Type::list) {
        a.extended = true;
        if (auto r = list_selection(*c.next(), a); !r) return r;
    }
    if (!c.mailbox(a.reference, false)) return bad("Missing reference name");
    const Arg* pat = c.next();
    if (!pat) return bad("Missing mailbox pattern");
    if (pat->type == Arg::Type::list) {
        a.extended = true;
        for (const Arg& p : pat->list) {
            std::string s;
            if (!list_mailbox(p, s)) return bad("Invalid mailbox pattern");
            a.patterns.push_back(std::move(s));
        }
        if (a.patterns.empty()) return bad("Missing mailbox pattern");
    } else {
        std::string s;
        if (!list_mailbox(*pat, s)) return bad("Invalid mailbox pattern");
        a.patterns.push_back(std::move(s));
    }
    if (c.peek()) {
        if (!c.next()->is_atom("RETURN")) return bad("Unexpected LIST argument");
        a.extended = true;
        if (auto r = list_return(c, a); !r) return r;
    }
    cmd.args = std::move(a);
    return c.end();
}

Result<void> parse_lsub(Cursor& c, Command& cmd, const Limits&) {
    LsubArgs a;
    const Arg* pat = nullptr;
    if (!c.mailbox(a.reference, false) || !(pat = c.next()) || !list_mailbox(*pat, a.pattern))
        return bad("LSUB needs a reference and a pattern");
    cmd.args = std::move(a);
    return c.end();
}

// One message of APPEND: [flag-list] [date-time] literal.
Result<void> append_message(Cursor& c, AppendMessage& m) {
    const Arg* a = c.next();
    if (a && a->type == Arg::Type::list) {
        for (const Arg& f : a->list) {
            if (f.type != Arg::Type::atom || !atom_ok(f.value, AtomKind::flag) || f.value == "\\Recent" ||
                upper(f.value) == "\\RECENT")
                return bad("Invalid flag in APPEND");
            m.flags.push_back(f.value);
        }
        a = c.next();
    }
    if (a && a->type == Arg::Type::quoted) {
        auto dt = parse_date_time(a->value);
        if (!dt) return bad("Invalid date-time in APPEND");
        m.date = *dt;
        a = c.next();
    }
    if (!a || a->type != Arg::Type::literal) return bad("APPEND needs the message as a literal");
    m.binary = a->literal8;
    m.data = a->value;
    return {};
}

Result<void> parse_append(Cursor& c, Command& cmd, const Limits&) {
    AppendArgs a;
    if (!c.mailbox(a.mailbox)) return bad("Missing mailbox name");
    do {
        AppendMessage m;
        if (auto r = append_message(c, m); !r) return r;
        a.messages.push_back(std::move(m));
    } while (c.peek());
    cmd.args = std::move(a);
    return {};
}

Result<void> parse_uid_expunge(Cursor& c, Command& cmd, const Limits&) {
    ExpungeArgs a;
    if (cmd.uid) {
        SequenceSet set;
        if (!c.sequence_set(set)) return bad("UID EXPUNGE needs a UID set");
        a.uids = std::move(set);
    }
    cmd.args = std::move(a);
    return c.end();
}

Result<void> parse_copy(Cursor& c, Command& cmd, const Limits&) {
    CopyArgs a;
    if (!c.sequence_set(a.set)) return bad("Invalid sequence set");
    if (!c.mailbox(a.mailbox)) return bad("Missing mailbox name");
    cmd.args = std::move(a);
    return c.end();
}

Result<void> parse_store(Cursor& c, Command& cmd, const Limits&) {
    StoreArgs a;
    if (!c.sequence_set(a.set)) return bad("Invalid sequence set");
    if (c.peek() && c.peek()->type == Arg::Type::list) {
        const Arg* mods = c.next();
        if (mods->list.size() != 2 || !mods->list[0].is_atom("UNCHANGEDSINCE")) return bad("Unknown STORE modifier");
        uint64_t v = 0;
        if (!number_of(mods->list[1], v, 0, kMaxModseq)) return bad("Invalid UNCHANGEDSINCE");
        a.unchanged_since = v;
    }
    const Arg* item = c.next();
    if (!item || item->type != Arg::Type::atom) return bad("Missing STORE item");
    std::string it = upper(item->value);
    if (!it.empty() && (it[0] == '+' || it[0] == '-')) {
        a.mode = it[0] == '+' ? StoreArgs::Mode::add : StoreArgs::Mode::remove;
        it.erase(0, 1);
    }
    if (it == "FLAGS.SILENT") a.silent = true;
    else if (it != "FLAGS") return bad("Invalid STORE item");
    const Arg* first = c.peek();
    if (!first) return bad("Missing flags");
    auto add = [&](const Arg& f) {
        if (f.type != Arg::Type::atom || !atom_ok(f.value, AtomKind::flag)) return false;
        a.flags.push_back(f.value);
        return true;
    };
    if (first->type == Arg::Type::list) {
        for (const Arg& f : c.next()->list)
            if (!add(f)) return bad("Invalid flag");
    } else {
        while (const Arg* f = c.next())
            if (!add(*f)) return bad("Invalid flag");
    }
    cmd.args = std::move(a);
    return c.end();
}

Result<void> parse_id(Cursor& c, Command& cmd, const Limits&) {
    IdArgs a;
    const Arg* p = c.next();
    if (!p) return bad("ID needs NIL or a list");
    if (p->type == Arg::Type::list) {
        if (p->list.size() % 2 != 0) return bad("ID needs field and value pairs");
        // RFC 2971 section 3.3: at most 30 pairs, fields of 30 octets, values of 1024.
        if (p->list.size() > 60) return bad("Too many ID fields");
        for (size_t i = 0; i < p->list.size(); i += 2) {
            const Arg& f = p->list[i];
            const Arg& v = p->list[i + 1];
            if (!f.is_string() || f.value.size() > 30) return bad("Invalid ID field");
            if (v.is_atom("NIL")) a.fields.emplace_back(f.value, std::nullopt);
            else if (v.is_string() && v.value.size() <= 1024) a.fields.emplace_back(f.value, v.value);
            else return bad("Invalid ID value");
        }
    } else if (!p->is_atom("NIL")) {
        return bad("ID needs NIL or a list");
    }
    cmd.args = std::move(a);
    return c.end();
}

struct Entry {
    Verb verb;
    Parser parse;
    bool uid_ok;
};

const std::map<std::string, Entry>& table() {
    static const std::map<std::string, Entry> kTable = {
        {"CAPABILITY", {Verb::capability, no_args, false}}, {"NOOP", {Verb::noop, no_args, false}},
        {"LOGOUT", {Verb::logout, no_args, false}}, {"STARTTLS", {Verb::starttls, no_args, false}},
        {"AUTHENTICATE", {Verb::authenticate, parse_authenticate, false}}, {"LOGIN", {Verb::login, parse_login, false}},
        {"ENABLE", {Verb::enable, parse_enable, false}}, {"SELECT", {Verb::select, parse_select, false}},
        {"EXAMINE", {Verb::examine, parse_select, false}}, {"CREATE", {Verb::create, parse_mailbox_only, false}},
        {"DELETE", {Verb::delete_, parse_mailbox_only, false}}, {"RENAME", {Verb::rename, parse_rename, false}},
        {"SUBSCRIBE", {Verb::subscribe, parse_mailbox_only, false}},
        {"UNSUBSCRIBE", {Verb::unsubscribe, parse_mailbox_only, false}}, {"LIST", {Verb::list, parse_list, false}},
        {"LSUB", {Verb::lsub, parse_lsub, false}}, {"NAMESPACE", {Verb::namespace_, no_args, false}},
        {"STATUS", {Verb::status, parse_status, false}}, {"APPEND", {Verb::append, parse_append, false}},
        {"CHECK", {Verb::check, no_args, false}}, {"CLOSE", {Verb::close, no_args, false}},
        {"UNSELECT", {Verb::unselect, no_args, false}}, {"EXPUNGE", {Verb::expunge, parse_uid_expunge, true}},
        {"SEARCH", {Verb::search, parse_search_command, true}}, {"FETCH", {Verb::fetch, parse_fetch_command, true}},
        {"STORE", {Verb::store, parse_store, true}}, {"COPY", {Verb::copy, parse_copy, true}},
        {"MOVE", {Verb::move, parse_copy, true}}, {"IDLE", {Verb::idle, no_args, false}}, {"ID", {Verb::id, parse_id, false}},
    };
    return kTable;
}

}  // namespace

Result<Command> parse_command(RawCommand raw, const Limits& limits) {
    Command cmd;
    cmd.tag = std::move(raw.tag);
    std::string name = raw.name;
    std::vector<Arg> args = std::move(raw.args);
    if (name == "UID") {
        if (args.empty() || args[0].type != Arg::Type::atom) return bad("UID needs a command");
        name = upper(args[0].value);
        args.erase(args.begin());
        cmd.uid = true;
    }
    auto it = table().find(name);
    if (it == table().end() || (cmd.uid && !it->second.uid_ok)) return bad("Unknown command");
    cmd.verb = it->second.verb;
    cmd.name = cmd.uid ? "UID " + name : name;
    Cursor c(args);
    if (auto r = it->second.parse(c, cmd, limits); !r) return r.error();
    return cmd;
}

bool is_idle_done(std::string_view line) { return upper(line) == "DONE"; }

std::string normalize_mailbox(std::string name) {
    if (upper(name) == "INBOX") return "INBOX";
    return name;
}

}  // namespace ferry::imap
