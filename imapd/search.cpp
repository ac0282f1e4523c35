// SEARCH arguments (RFC 9051 section 6.4.4, RFC 3501 keys, RFC 4731/5182 RETURN) into a key tree.
#include <map>

#include "imapd/command.hpp"
#include "imapd/syntax.hpp"

namespace ferry::imap {

namespace {

using Op = SearchKey::Op;

enum class Shape { none, keyword, astring, header, date, number, seqset, key, two_keys, modseq, seconds };

struct KeyDef {
    Op op;
    Shape shape;
};

const std::map<std::string, KeyDef>& keys() {
    static const std::map<std::string, KeyDef> kKeys = {
        {"ALL", {Op::all, Shape::none}}, {"ANSWERED", {Op::answered, Shape::none}},
        {"DELETED", {Op::deleted, Shape::none}}, {"DRAFT", {Op::draft, Shape::none}},
        {"FLAGGED", {Op::flagged, Shape::none}}, {"SEEN", {Op::seen, Shape::none}},
        {"RECENT", {Op::recent, Shape::none}}, {"NEW", {Op::new_, Shape::none}}, {"OLD", {Op::old, Shape::none}},
        {"UNANSWERED", {Op::unanswered, Shape::none}}, {"UNDELETED", {Op::undeleted, Shape::none}},
        {"UNDRAFT", {Op::undraft, Shape::none}}, {"UNFLAGGED", {Op::unflagged, Shape::none}},
        {"UNSEEN", {Op::unseen, Shape::none}}, {"KEYWORD", {Op::keyword, Shape::keyword}},
        {"UNKEYWORD", {Op::unkeyword, Shape::keyword}}, {"BCC", {Op::bcc, Shape::astring}},
        {"BODY", {Op::body, Shape::astring}}, {"CC", {Op::cc, Shape::astring}}, {"FROM", {Op::from, Shape::astring}},
        {"SUBJECT", {Op::subject, Shape::astring}}, {"TEXT", {Op::text, Shape::astring}},
        {"TO", {Op::to, Shape::astring}}, {"HEADER", {Op::header, Shape::header}},
        {"BEFORE", {Op::before, Shape::date}}, {"ON", {Op::on, Shape::date}}, {"SINCE", {Op::since, Shape::date}},
        {"SENTBEFORE", {Op::sentbefore, Shape::date}}, {"SENTON", {Op::senton, Shape::date}},
        {"SENTSINCE", {Op::sentsince, Shape::date}}, {"LARGER", {Op::larger, Shape::number}},
        {"SMALLER", {Op::smaller, Shape::number}}, {"UID", {Op::uid, Shape::seqset}},
        {"NOT", {Op::not_, Shape::key}}, {"OR", {Op::or_, Shape::two_keys}}, {"MODSEQ", {Op::modseq, Shape::modseq}},
        {"OLDER", {Op::older, Shape::seconds}}, {"YOUNGER", {Op::younger, Shape::seconds}},
    };
    return kKeys;
}

Result<void> parse_key(Cursor& c, SearchKey& key, size_t depth, const Limits& limits);

Result<void> key_args(Cursor& c, const KeyDef& def, SearchKey& key, size_t depth, const Limits& limits) {
    switch (def.shape) {
    case Shape::none: return {};
    case Shape::keyword: {
        const Arg* a = c.next();
        if (!a || a->type != Arg::Type::atom || !atom_ok(a->value, AtomKind::atom)) return bad("Invalid keyword");
        key.str = a->value;
        return {};
    }
    case Shape::astring:
        if (!c.astring(key.str)) return bad("Missing search string");
        return {};
    case Shape::header:
        if (!c.astring(key.str) || !c.astring(key.str2)) return bad("HEADER needs a field name and a string");
        return {};
    case Shape::date: {
        const Arg* a = c.next();
        auto d = a && (a->type == Arg::Type::atom || a->type == Arg::Type::quoted) ? parse_date(a->value) : std::nullopt;
        if (!d) return bad("Invalid date");
        key.date = *d;
        return {};
    }
    case Shape::number:
        if (!c.number(key.number, 0, UINT64_MAX / 10)) return bad("Invalid number");
        return {};
    case Shape::seconds:
        if (!c.number(key.number, 1, 0xffffffffu)) return bad("Invalid interval");
        return {};
    case Shape::seqset:
        if (!c.sequence_set(key.set)) return bad("Invalid UID set");
        return {};
    case Shape::modseq:
        // RFC 7162: MODSEQ [entry-name entry-type-req] mod-sequence-valzer.
        if (c.peek() && c.peek()->is_string()) {
            key.str = c.next()->value;
            const Arg* t = c.next();
            if (!t || !(t->is_atom("PRIV") || t->is_atom("SHARED") || t->is_atom("ALL"))) return bad("Invalid MODSEQ entry type");
            key.str2 = upper(t->value);
        }
        if (!c.number(key.number, 0, kMaxModseq)) return bad("Invalid mod-sequence");
        return {};
    case Shape::key:
    case Shape::two_keys: {
        key.children.resize(def.shape == Shape::key ? 1 : 2);
        for (SearchKey& child : key.children)
            if (auto r = parse_key(c, child, depth + 1, limits); !r) return r;
        return {};
    }
    }
    return {};
}

Result<void> parse_key(Cursor& c, SearchKey& key, size_t depth, const Limits& limits) {
    if (depth > limits.max_depth) return bad("Search keys nested too deep");
    const Arg* a = c.next();
    if (!a) return bad("Missing search key");
    if (a->type == Arg::Type::list) {
        key.op = Op::and_;
        Cursor inner(a->list);
        if (!inner.peek()) return bad("Empty search key list");
        while (inner.peek()) {
            key.children.emplace_back();
            if (auto r = parse_key(inner, key.children.back(), depth + 1, limits); !r) return r;
        }
        return {};
    }
    if (a->type != Arg::Type::atom) return bad("Invalid search key");
    auto it = keys().find(upper(a->value));
    if (it != keys().end()) {
        key.op = it->second.op;
        return key_args(c, it->second, key, depth, limits);
    }
    if (auto set = parse_sequence_set(a->value)) {
        key.op = Op::seqset;
        key.set = std::move(*set);
        return {};
    }
    return bad("Unknown search key");
}

Result<void> return_options(Cursor& c, SearchArgs& s) {
    const Arg* opts = c.next();
    if (!opts || opts->type != Arg::Type::list) return bad("RETURN needs options");
    s.esearch = true;
    for (const Arg& o : opts->list) {
        if (o.is_atom("MIN")) s.ret_min = true;
        else if (o.is_atom("MAX")) s.ret_max = true;
        else if (o.is_atom("ALL")) s.ret_all = true;
        else if (o.is_atom("COUNT")) s.ret_count = true;
        else if (o.is_atom("SAVE")) s.ret_save = true;
        else return bad("Unknown SEARCH return option");
    }
    // RFC 4731 section 3.1: RETURN () means RETURN (ALL).
    if (opts->list.empty()) s.ret_all = true;
    return {};
}

}  // namespace

Result<void> parse_search_command(Cursor& c, Command& cmd, const Limits& limits) {
    SearchArgs s;
    if (c.peek() && c.peek()->is_atom("RETURN")) {
        c.next();
        if (auto r = return_options(c, s); !r) return r;
    }
    if (c.peek() && c.peek()->is_atom("CHARSET")) {
        c.next();
        std::string cs;
        if (!c.astring(cs)) return bad("Missing charset");
        s.charset = upper(cs);
    }
    s.key.op = Op::and_;
    if (!c.peek()) return bad("Missing search key");
    while (c.peek()) {
        s.key.children.emplace_back();
        if (auto r = parse_key(c, s.key.children.back(), 1, limits); !r) return r;
    }
    cmd.args = std::move(s);
    return {};
}

}  // namespace ferry::imap
