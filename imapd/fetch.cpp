// FETCH arguments (RFC 9051 section 6.4.5, RFC 3516 BINARY, RFC 7162 modifiers) into items.
#include <map>

#include "imapd/command.hpp"
#include "imapd/syntax.hpp"

namespace ferry::imap {

namespace {

using Kind = FetchItem::Kind;

// "1.2.3" followed by an optional ".TEXT"-like keyword; the part numbers go to `sec.part`.
std::string_view section_part(std::string_view s, Section& sec, bool& ok) {
    ok = true;
    while (!s.empty() && s[0] >= '1' && s[0] <= '9') {
        uint64_t n = 0;
        while (!s.empty() && s[0] >= '0' && s[0] <= '9') {
            n = n * 10 + uint64_t(s[0] - '0');
            if (n > 0xffffffffu) return ok = false, s;
            s.remove_prefix(1);
        }
        sec.part.push_back(uint32_t(n));
        if (s.empty()) return s;
        if (s[0] != '.') return ok = false, s;
        s.remove_prefix(1);
        if (s.empty()) return ok = false, s;
    }
    return s;
}

// HEADER.FIELDS[.NOT] (name ...): the list is framed again as an argument list.
bool header_fields(std::string_view list, Section& sec) {
    CommandReader reader;
    std::string line = "x L " + std::string(list) + "\r\n";
    std::string_view in(line);
    Step st = reader.next(in);
    if (st.kind != Step::Kind::command || st.command.args.size() != 1 || st.command.args[0].type != Arg::Type::list) return false;
    for (const Arg& f : st.command.args[0].list) {
        if (!(f.is_string() || (f.type == Arg::Type::atom && atom_ok(f.value, AtomKind::astring))) || f.value.empty()) return false;
        sec.fields.push_back(upper(f.value));
    }
    return !sec.fields.empty();
}

bool parse_section(std::string_view s, Section& sec, bool binary) {
    bool ok = true;
    std::string_view rest = section_part(s, sec, ok);
    if (!ok) return false;
    if (rest.empty()) return true;
    if (binary) return false;  // section-binary is only a part number
    std::string head = upper(rest.substr(0, rest.find(' ')));
    if (head == "HEADER") sec.text = Section::Text::header;
    else if (head == "TEXT") sec.text = Section::Text::text;
    else if (head == "MIME" && !sec.part.empty()) sec.text = Section::Text::mime;
    else if (head == "HEADER.FIELDS") sec.text = Section::Text::header_fields;
    else if (head == "HEADER.FIELDS.NOT") sec.text = Section::Text::header_fields_not;
    else return false;
    bool fields = sec.text == Section::Text::header_fields || sec.text == Section::Text::header_fields_not;
    if (!fields) return head.size() == rest.size();
    if (rest.size() < head.size() + 2 || rest[head.size()] != ' ') return false;
    return header_fields(rest.substr(head.size() + 1), sec);
}

// "<offset.length>" (RFC 9051 partial: number64 "." nz-number64).
bool parse_partial(std::string_view s, FetchItem& item) {
    if (s.size() < 5 || s.front() != '<' || s.back() != '>') return false;
    s = s.substr(1, s.size() - 2);
    size_t dot = s.find('.');
    if (dot == std::string_view::npos) return false;
    uint64_t off = 0, len = 0;
    Arg a{Arg::Type::atom, std::string(s.substr(0, dot)), false, {}};
    Arg b{Arg::Type::atom, std::string(s.substr(dot + 1)), false, {}};
    if (!number_of(a, off, 0, kMaxModseq) || !number_of(b, len, 1, kMaxModseq)) return false;
    item.partial.emplace(off, len);
    return true;
}

bool parse_item(const std::string& atom, std::vector<FetchItem>& out) {
    static const std::map<std::string, Kind> kSimple = {
        {"ENVELOPE", Kind::envelope}, {"FLAGS", Kind::flags}, {"INTERNALDATE", Kind::internaldate},
        {"RFC822", Kind::rfc822}, {"RFC822.HEADER", Kind::rfc822_header}, {"RFC822.SIZE", Kind::rfc822_size},
        {"RFC822.TEXT", Kind::rfc822_text}, {"BODY", Kind::body}, {"BODYSTRUCTURE", Kind::bodystructure},
        {"UID", Kind::uid}, {"MODSEQ", Kind::modseq},
    };
    size_t open = atom.find('[');
    FetchItem item;
    if (open == std::string::npos) {
        auto it = kSimple.find(upper(atom));
        if (it == kSimple.end()) return false;
        item.kind = it->second;
        out.push_back(std::move(item));
        return true;
    }
    std::string name = upper(atom.substr(0, open));
    size_t close = atom.rfind(']');
    if (close == std::string::npos || close < open) return false;
    if (name == "BODY" || name == "BODY.PEEK") item.kind = Kind::body_section;
    else if (name == "BINARY" || name == "BINARY.PEEK") item.kind = Kind::binary;
    else if (name == "BINARY.SIZE") item.kind = Kind::binary_size;
    else return false;
    item.peek = name.ends_with(".PEEK");
    if (!parse_section(std::string_view(atom).substr(open + 1, close - open - 1), item.section, item.kind != Kind::body_section))
        return false;
    std::string_view tail = std::string_view(atom).substr(close + 1);
    if (!tail.empty() && (item.kind == Kind::binary_size || !parse_partial(tail, item))) return false;
    out.push_back(std::move(item));
    return true;
}

bool expand_macro(const std::string& u, std::vector<FetchItem>& out) {
    std::vector<Kind> kinds;
    if (u == "ALL") kinds = {Kind::flags, Kind::internaldate, Kind::rfc822_size, Kind::envelope};
    else if (u == "FAST") kinds = {Kind::flags, Kind::internaldate, Kind::rfc822_size};
    else if (u == "FULL") kinds = {Kind::flags, Kind::internaldate, Kind::rfc822_size, Kind::envelope, Kind::body};
    else return false;
    for (Kind k : kinds) out.push_back(FetchItem{k, false, {}, std::nullopt});
    return true;
}

Result<void> fetch_modifiers(const Arg& mods, FetchArgs& f, bool uid) {
    Cursor m(mods.list);
    while (const Arg* name = m.next()) {
        if (name->is_atom("CHANGEDSINCE")) {
            uint64_t v = 0;
            if (!m.number(v, 0, kMaxModseq)) return bad("Invalid CHANGEDSINCE");
            f.changed_since = v;
        } else if (name->is_atom("VANISHED") && uid) {
            f.vanished = true;
        } else {
            return bad("Unknown FETCH modifier");
        }
    }
    // RFC 7162 section 3.2.6: VANISHED needs CHANGEDSINCE.
    if (f.vanished && !f.changed_since) return bad("VANISHED without CHANGEDSINCE");
    return {};
}

}  // namespace

Result<void> parse_fetch_command(Cursor& c, Command& cmd, const Limits&) {
    FetchArgs f;
    if (!c.sequence_set(f.set)) return bad("Invalid sequence set");
    const Arg* att = c.next();
    if (!att) return bad("Missing FETCH items");
    if (att->type == Arg::Type::atom) {
        if (!expand_macro(upper(att->value), f.items) && !parse_item(att->value, f.items)) return bad("Invalid FETCH item");
    } else if (att->type == Arg::Type::list && !att->list.empty()) {
        for (const Arg& a : att->list)
            if (a.type != Arg::Type::atom || !parse_item(a.value, f.items)) return bad("Invalid FETCH item");
    } else {
        return bad("Invalid FETCH items");
    }
    if (const Arg* mods = c.next()) {
        if (mods->type != Arg::Type::list) return bad("Unexpected arguments");
        if (auto r = fetch_modifiers(*mods, f, cmd.uid); !r) return r;
    }
    cmd.args = std::move(f);
    return c.end();
}

}  // namespace ferry::imap
