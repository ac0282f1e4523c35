// Shared pieces of the IMAP argument grammar.
#include "imapd/syntax.hpp"

#include "imapd/command.hpp"

namespace ferry::imap {

bool atom_ok(std::string_view s, AtomKind kind) {
    if (kind == AtomKind::flag) {
        if (!s.empty() && s[0] == '\\') s.remove_prefix(1);
        kind = AtomKind::atom;
    }
    if (s.empty()) return false;
    for (unsigned char c : s) {
        if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '{' || c == '"' || c == '\\') return false;
        if ((c == '%' || c == '*') && kind != AtomKind::list) return false;
        if (c == ']' && kind == AtomKind::atom) return false;
    }
    return true;
}

Error bad(std::string text) { return make_error(0, {}, std::move(text)); }

bool number_of(const Arg& a, uint64_t& v, uint64_t min, uint64_t max) {
    if (a.type != Arg::Type::atom || a.value.empty() || a.value.size() > 19) return false;
    v = 0;
    for (char c : a.value) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + uint64_t(c - '0');
    }
    return v >= min && v <= max;
}

bool list_mailbox(const Arg& a, std::string& out) {
    if (a.is_string()) {
        out = a.value;
        return true;
    }
    if (a.type != Arg::Type::atom || !atom_ok(a.value, AtomKind::list)) return false;
    out = a.value;
    return true;
}

Result<void> Cursor::end() const {
    if (i_ < args_.size()) return bad("Unexpected arguments");
    return {};
}

bool Cursor::astring(std::string& out) {
    const Arg* a = peek();
    if (!a || !(a->is_string() || (a->type == Arg::Type::atom && atom_ok(a->value, AtomKind::astring)))) return false;
    out = next()->value;
    return true;
}

bool Cursor::mailbox(std::string& out, bool normalize) {
    if (!astring(out)) return false;
    if (normalize) out = normalize_mailbox(std::move(out));
    return true;
}

bool Cursor::number(uint64_t& v, uint64_t min, uint64_t max) {
    const Arg* a = peek();
    if (!a || !number_of(*a, v, min, max)) return false;
    i_++;
    return true;
}

bool Cursor::sequence_set(SequenceSet& set) {
    const Arg* a = peek();
    if (!a || a->type != Arg::Type::atom) return false;
    auto s = parse_sequence_set(a->value);
    if (!s) return false;
    set = std::move(*s);
    i_++;
    return true;
}

}  // namespace ferry::imap
