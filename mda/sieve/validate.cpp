// The Sieve validator: each command's and test's tags, arguments, tests and block checked against its signature, require enforced.
#include <algorithm>
#include <array>
#include <string>
#include <utility>

#include "common/mail/address.hpp"
#include "mda/sieve/script.hpp"
#include "mda/sieve/strings.hpp"

namespace ferry::sieve {

bool Node::has(std::string_view t) const { return std::find(tags.begin(), tags.end(), t) != tags.end(); }

const Argument* Node::tag(std::string_view name) const {
    for (size_t i = 0; i < tags.size(); ++i)
        if (tags[i] == name) return &tag_args[i];
    return nullptr;
}

namespace {

// What an argument must be: a number, one string, or a string list (one string counts as a list).
enum class V { none, number, string, strings };

struct TagSpec {
    const char* name;
    V value;
    int group;        // tags of one non-zero group exclude each other
    const char* ext;  // the extension that must be required, or nullptr
};

enum class Tests { none, one, list };

struct Spec {
    const char* name;
    Op op;
    bool is_test;
    const char* ext;
    std::vector<TagSpec> tags;
    std::vector<V> positional;
    size_t optional = 0;  // how many of the first positional arguments may be left out
    Tests tests = Tests::none;
    bool block = false;
    bool last_optional = false;  // the last positional argument may be left out instead
};

enum Group { none = 0, comparator = 1, match = 2, part = 3, transform = 4, zone = 5, over = 6, modifier40 = 7,
             modifier30 = 8, duplicate_id = 9 };

const TagSpec kComparator{"comparator", V::string, comparator, nullptr};
const TagSpec kMatch[] = {{"is", V::none, match, nullptr},
                          {"contains", V::none, match, nullptr},
                          {"matches", V::none, match, nullptr},
                          {"count", V::string, match, "relational"},
                          {"value", V::string, match, "relational"}};
const TagSpec kPart[] = {{"all", V::none, part, nullptr},
                         {"localpart", V::none, part, nullptr},
                         {"domain", V::none, part, nullptr},
                         {"user", V::none, part, "subaddress"},
                         {"detail", V::none, part, "subaddress"}};
const TagSpec kIndex[] = {{"index", V::number, none, "index"}, {"last", V::none, none, "index"}};

std::vector<TagSpec> with(std::initializer_list<std::vector<TagSpec>> sets) {
    std::vector<TagSpec> all;
    for (const auto& s : sets) all.insert(all.end(), s.begin(), s.end());
    return all;
}
std::vector<TagSpec> match_tags() {
    std::vector<TagSpec> t{kComparator};
    t.insert(t.end(), std::begin(kMatch), std::end(kMatch));
    return t;
}
std::vector<TagSpec> part_tags() { return {std::begin(kPart), std::end(kPart)}; }
std::vector<TagSpec> index_tags() { return {std::begin(kIndex), std::end(kIndex)}; }

const std::vector<Spec>& specs() {
    static const std::vector<Spec> table = {
        {"require", Op::require, false, nullptr, {}, {V::strings}},
        {"if", Op::if_, false, nullptr, {}, {}, 0, Tests::one, true},
        {"elsif", Op::elsif, false, nullptr, {}, {}, 0, Tests::one, true},
        {"else", Op::else_, false, nullptr, {}, {}, 0, Tests::none, true},
        {"stop", Op::stop, false, nullptr, {}, {}},
        {"keep", Op::keep, false, nullptr, {{"flags", V::strings, none, "imap4flags"}}, {}},
        {"discard", Op::discard, false, nullptr, {}, {}},
        {"fileinto", Op::fileinto, false, "fileinto",
         {{"copy", V::none, none, "copy"}, {"create", V::none, none, "mailbox"}, {"flags", V::strings, none, "imap4flags"}},
         {V::string}},
        {"redirect", Op::redirect, false, nullptr, {{"copy", V::none, none, "copy"}}, {V::string}},
        {"reject", Op::reject, false, "reject", {}, {V::string}},
        {"ereject", Op::ereject, false, "ereject", {}, {V::string}},
        {"set", Op::set, false, "variables",
         {{"lower", V::none, modifier40, nullptr}, {"upper", V::none, modifier40, nullptr},
          {"lowerfirst", V::none, modifier30, nullptr}, {"upperfirst", V::none, modifier30, nullptr},
          {"quotewildcard", V::none, none, nullptr}, {"length", V::none, none, nullptr}},
         {V::string, V::string}},
        {"setflag", Op::setflag, false, "imap4flags", {}, {V::string, V::strings}, 1},
        {"addflag", Op::addflag, false, "imap4flags", {}, {V::string, V::strings}, 1},
        {"removeflag", Op::removeflag, false, "imap4flags", {}, {V::string, V::strings}, 1},
        {"vacation", Op::vacation, false, "vacation",
         {{"days", V::number, none, nullptr}, {"subject", V::string, none, nullptr}, {"from", V::string, none, nullptr},
          {"addresses", V::strings, none, nullptr}, {"mime", V::none, none, nullptr}, {"handle", V::string, none, nullptr}},
         {V::string}},
        {"addheader", Op::addheader, false, "editheader", {{"last", V::none, none, nullptr}}, {V::string, V::string}},
        {"deleteheader", Op::deleteheader, false, "editheader",
         with({{{"index", V::number, none, nullptr}, {"last", V::none, none, nullptr}}, match_tags()}),
         {V::string, V::strings}, 0, Tests::none, false, true},
        {"true", Op::true_, true, nullptr, {}, {}},
        {"false", Op::false_, true, nullptr, {}, {}},
        {"not", Op::not_, true, nullptr, {}, {}, 0, Tests::one},
        {"allof", Op::allof, true, nullptr, {}, {}, 0, Tests::list},
        {"anyof", Op::anyof, true, nullptr, {}, {}, 0, Tests::list},
        {"header", Op::header, true, nullptr, with({match_tags(), index_tags()}), {V::strings, V::strings}},
        {"address", Op::address, true, nullptr, with({match_tags(), part_tags(), index_tags()}), {V::strings, V::strings}},
        {"envelope", Op::envelope, true, "envelope", with({match_tags(), part_tags()}), {V::strings, V::strings}},
        {"exists", Op::exists, true, nullptr, {}, {V::strings}},
        {"size", Op::size, true, nullptr, {{"over", V::none, over, nullptr}, {"under", V::none, over, nullptr}}, {V::number}},
        {"body", Op::body, true, "body",
         with({match_tags(),
               {{"raw", V::none, transform, nullptr}, {"content", V::strings, transform, nullptr},
                {"text", V::none, transform, nullptr}}}),
         {V::strings}},
        {"string", Op::string, true, "variables", match_tags(), {V::strings, V::strings}},
        {"hasflag", Op::hasflag, true, "imap4flags", match_tags(), {V::strings, V::strings}, 1},
        {"date", Op::date, true, "date",
         with({match_tags(), index_tags(), {{"zone", V::string, zone, nullptr}, {"originalzone", V::none, zone, nullptr}}}),
         {V::string, V::string, V::strings}},
        {"currentdate", Op::currentdate, true, "date", with({match_tags(), {{"zone", V::string, zone, nullptr}}}),
         {V::string, V::strings}},
        {"environment", Op::environment, true, "environment", match_tags(), {V::string, V::strings}},
        {"mailboxexists", Op::mailboxexists, true, "mailbox", {}, {V::strings}},
        {"duplicate", Op::duplicate, true, "duplicate",
         {{"handle", V::string, none, nullptr}, {"header", V::string, duplicate_id, nullptr},
          {"uniqueid", V::string, duplicate_id, nullptr}, {"seconds", V::number, none, nullptr},
          {"last", V::none, none, nullptr}},
         {}},
    };
    return table;
}

const std::array<const char*, 19> kExtensions = {
    "fileinto", "reject", "ereject", "envelope", "encoded-character", "copy", "mailbox", "subaddress", "relational",
    "body", "variables", "imap4flags", "vacation", "date", "index", "environment", "editheader", "duplicate",
    "comparator-i;ascii-numeric"};

bool known_extension(std::string_view ext) {
    return ext == "comparator-i;octet" || ext == "comparator-i;ascii-casemap" ||
           std::find(kExtensions.begin(), kExtensions.end(), ext) != kExtensions.end();
}

const std::array<const char*, 13> kDateParts = {"year", "month", "day", "date", "julian", "hour", "minute",
                                                "second", "time", "iso8601", "std11", "zone", "weekday"};

class Validator {
public:
    explicit Validator(Script& s) : s_(s) {}

    std::optional<CompileError> block(std::vector<RawNode>& raw, std::vector<Node>& out, bool top) {
        bool others = false;
        Op prev = Op::stop;
        for (auto& r : raw) {
            const Spec* spec = find(r.name);
            if (!spec) return err(r.pos, "unknown command '" + r.name + "'");
            if (spec->is_test) return err(r.pos, "'" + r.name + "' is a test, not a command");
            if (spec->op == Op::require) {
                if (!top || others) return err(r.pos, "require must come before any other command");
                if (auto e = require(r)) return e;
            } else {
                others = true;
            }
            if ((spec->op == Op::elsif || spec->op == Op::else_) && prev != Op::if_ && prev != Op::elsif)
                return err(r.pos, "'" + r.name + "' must follow 'if' or 'elsif'");
            prev = spec->op;
            Node n;
            if (auto e = node(r, *spec, n)) return e;
            if (spec->op != Op::require) out.push_back(std::move(n));
        }
        return std::nullopt;
    }

private:
    static CompileError err(Pos at, std::string msg) { return CompileError{at, std::move(msg)}; }

    static const Spec* find(std::string_view name) {
        for (const auto& s : specs())
            if (name == s.name) return &s;
        return nullptr;
    }

    std::optional<CompileError> require(RawNode& r) {
        if (r.args.size() != 1 || r.args[0].kind != Argument::Kind::strings || !r.tests.empty())
            return err(r.pos, "require takes one string list");
        for (const auto& ext : r.args[0].strings) {
            if (!known_extension(ext)) return err(r.args[0].pos, "unknown extension '" + ext + "'");
            s_.extensions.insert(ext);
        }
        return std::nullopt;
    }

    bool needs(const char* ext) const { return !ext || s_.required(ext); }

    std::optional<CompileError> node(RawNode& r, const Spec& spec, Node& n) {
        n.op = spec.op;
        n.pos = r.pos;
        if (!needs(spec.ext))
            return err(r.pos, "'" + r.name + "' needs require \"" + spec.ext + "\"");
        if (auto e = arguments(r, spec, n)) return e;
        if (auto e = tests(r, spec, n)) return e;
        if (r.has_block && !spec.block) return err(r.pos, "'" + r.name + "' takes no block");
        if (!r.has_block && spec.block) return err(r.pos, "'" + r.name + "' needs a block");
        if (spec.block)
            if (auto e = block(r.block, n.block, false)) return e;
        return specific(n);
    }

    std::optional<CompileError> tests(RawNode& r, const Spec& spec, Node& n) {
        if (spec.tests == Tests::none && !r.tests.empty()) {
            // A command without tests followed by an identifier: most likely a forgotten ';'.
            if (!spec.is_test && !r.test_list)
                return err(r.tests[0].pos, "expected ';' after the arguments of " + r.name + ", found '" +
                                               r.tests[0].name + "'");
            return err(r.pos, "'" + r.name + "' takes no test");
        }
        if (spec.tests == Tests::one && (r.tests.size() != 1 || r.test_list))
            return err(r.pos, "'" + r.name + "' takes one test");
        if (spec.tests == Tests::list && !r.test_list) return err(r.pos, "'" + r.name + "' takes a test list in ( )");
        for (auto& t : r.tests) {
            const Spec* ts = find(t.name);
            if (!ts) return err(t.pos, "unknown test '" + t.name + "'");
            if (!ts->is_test) return err(t.pos, "'" + t.name + "' is a command, not a test");
            n.tests.emplace_back();
            if (auto e = node(t, *ts, n.tests.back())) return e;
        }
        return std::nullopt;
    }

    static bool fits(const Argument& a, V v) {
        switch (v) {
            case V::none: return false;
            case V::number: return a.kind == Argument::Kind::number;
            case V::string: return a.kind == Argument::Kind::strings && !a.bracketed;
            case V::strings: return a.kind == Argument::Kind::strings;
        }
        return false;
    }
    static const char* name_of(V v) {
        return v == V::number ? "a number" : v == V::string ? "a string" : "a string list";
    }

    std::optional<CompileError> arguments(RawNode& r, const Spec& spec, Node& n) {
        std::vector<int> groups;
        for (size_t i = 0; i < r.args.size(); ++i) {
            Argument& a = r.args[i];
            if (a.kind != Argument::Kind::tag) {
                n.args.push_back(std::move(a));
                continue;
            }
            if (!n.args.empty()) return err(a.pos, "tag ':" + a.tag + "' after positional arguments of '" + r.name + "'");
            const TagSpec* t = nullptr;
            for (const auto& ts : spec.tags)
                if (a.tag == ts.name) t = &ts;
            if (!t) return err(a.pos, "'" + r.name + "' has no tag ':" + a.tag + "'");
            if (!needs(t->ext)) return err(a.pos, "':" + a.tag + "' needs require \"" + t->ext + "\"");
            if (n.has(a.tag)) return err(a.pos, "':" + a.tag + "' given twice");
            if (t->group && std::find(groups.begin(), groups.end(), t->group) != groups.end())
                return err(a.pos, "':" + a.tag + "' conflicts with an earlier tag of '" + r.name + "'");
            if (t->group) groups.push_back(t->group);
            Argument value = a;
            if (t->value != V::none) {
                if (i + 1 >= r.args.size() || !fits(r.args[i + 1], t->value))
                    return err(a.pos, "':" + a.tag + "' needs " + name_of(t->value) + " after it");
                value = std::move(r.args[++i]);
            }
            n.tags.push_back(a.tag);
            n.tag_args.push_back(std::move(value));
        }
        size_t want = spec.positional.size();
        size_t optional = spec.optional + (spec.last_optional ? 1 : 0);
        if (n.args.size() > want || n.args.size() + optional < want)
            return err(r.pos, "'" + r.name + "' takes " + std::to_string(want) + " positional argument" +
                                  (want == 1 ? "" : "s") + ", not " + std::to_string(n.args.size()));
        size_t skip = spec.last_optional ? 0 : want - n.args.size();  // optional ones left out come first
        for (size_t i = 0; i < n.args.size(); ++i)
            if (!fits(n.args[i], spec.positional[i + skip]))
                return err(n.args[i].pos, "'" + r.name + "' needs " + name_of(spec.positional[i + skip]) + " here");
        return std::nullopt;
    }

    bool constant(const std::string& s) const { return !s_.required("variables") || s.find("${") == std::string::npos; }

    std::optional<CompileError> comparator_and_match(Node& n) {
        if (const Argument* c = n.tag("comparator")) {
            const std::string& name = c->strings[0];
            if (name == "i;octet") n.comparator = Comparator::octet;
            else if (name == "i;ascii-casemap") n.comparator = Comparator::ascii_casemap;
            else if (name == "i;ascii-numeric") n.comparator = Comparator::ascii_numeric;
            else return err(c->pos, "unknown comparator '" + name + "'");
            if (n.comparator == Comparator::ascii_numeric && !s_.required("comparator-i;ascii-numeric"))
                return err(c->pos, "comparator i;ascii-numeric needs require \"comparator-i;ascii-numeric\"");
        }
        static const std::pair<const char*, MatchType> types[] = {{"is", MatchType::is}, {"contains", MatchType::contains},
            {"matches", MatchType::matches}, {"count", MatchType::count}, {"value", MatchType::value}};
        for (const auto& [name, type] : types)
            if (const Argument* a = n.tag(name)) {
                n.match = type;
                if (type == MatchType::count || type == MatchType::value) {
                    static const std::pair<const char*, Relation> ops[] = {{"gt", Relation::gt}, {"ge", Relation::ge},
                        {"lt", Relation::lt}, {"le", Relation::le}, {"eq", Relation::eq}, {"ne", Relation::ne}};
                    bool found = false;
                    for (const auto& [op, rel] : ops)
                        if (ascii_lower(a->strings[0]) == op) n.relation = rel, found = true;
                    if (!found) return err(a->pos, "unknown relational operator '" + a->strings[0] + "'");
                }
            }
        if (n.comparator == Comparator::ascii_numeric && (n.match == MatchType::contains || n.match == MatchType::matches))
            return err(n.pos, "comparator i;ascii-numeric does not support :contains or :matches");
        static const std::pair<const char*, AddressPart> parts[] = {{"all", AddressPart::all},
            {"localpart", AddressPart::localpart}, {"domain", AddressPart::domain}, {"user", AddressPart::user},
            {"detail", AddressPart::detail}};
        for (const auto& [name, p] : parts)
            if (n.has(name)) n.part = p;
        if (n.has("raw")) n.transform = BodyTransform::raw;
        if (n.has("content")) n.transform = BodyTransform::content;
        if (n.has("last") && !n.has("index") && n.op != Op::addheader && n.op != Op::duplicate)
            return err(n.pos, "':last' needs ':index'");
        if (const Argument* i = n.tag("index"); i && i->number == 0) return err(i->pos, "':index' counts from 1");
        return std::nullopt;
    }

    std::optional<CompileError> specific(Node& n) {
        if (auto e = comparator_and_match(n)) return e;
        switch (n.op) {
            case Op::size:
                if (!n.has("over") && !n.has("under")) return err(n.pos, "size needs :over or :under");
                break;
            case Op::redirect:
                // A constant address is checked now; one built from variables when the script runs.
                if (constant(n.args[0].strings[0]) && !valid_redirect(n.args[0].strings[0]))
                    return err(n.args[0].pos, "redirect to a bad address '" + n.args[0].strings[0] + "'");
                break;
            case Op::address:
                for (const auto& h : n.args[0].strings)
                    if (constant(h) && !is_address_field(h))
                        return err(n.args[0].pos, "'" + h + "' is not an address field (address test)");
                break;
            case Op::envelope:
                for (const auto& p : n.args[0].strings)
                    if (constant(p) && ascii_lower(p) != "from" && ascii_lower(p) != "to" && ascii_lower(p) != "auth")
                        return err(n.args[0].pos, "unknown envelope part '" + p + "'");
                break;
            case Op::date:
            case Op::currentdate: {
                const Argument& part = n.args[n.op == Op::date ? 1 : 0];
                const std::string& p = part.strings[0];
                if (constant(p) && std::find(kDateParts.begin(), kDateParts.end(), ascii_lower(p)) == kDateParts.end())
                    return err(part.pos, "unknown date part '" + p + "'");
                if (const Argument* z = n.tag("zone"); z && constant(z->strings[0]) && !parse_zone(z->strings[0]))
                    return err(z->pos, "a time zone is +hhmm or -hhmm");
                break;
            }
            case Op::set:
                if (constant(n.args[0].strings[0]) && !valid_variable_name(n.args[0].strings[0], false))
                    return err(n.args[0].pos, "bad variable name '" + n.args[0].strings[0] + "'");
                break;
            case Op::addheader:
            case Op::deleteheader:
                if (constant(n.args[0].strings[0]) && !valid_field_name(n.args[0].strings[0]))
                    return err(n.args[0].pos, "bad header field name '" + n.args[0].strings[0] + "'");
                break;
            case Op::string:
            case Op::hasflag:
            case Op::setflag:
            case Op::addflag:
            case Op::removeflag:
                if (n.op != Op::string && n.args.size() == 2)
                    for (const auto& v : n.args[0].strings)
                        if (constant(v) && !valid_variable_name(v, false))
                            return err(n.args[0].pos, "bad variable name '" + v + "'");
                break;
            default:
                break;
        }
        return std::nullopt;
    }

    Script& s_;
};

// RFC 5228 2.4.2.4: "${hex:...}" and "${unicode:...}" in every string, once encoded-character is required.
void decode_strings(std::vector<RawNode>& nodes) {
    for (auto& n : nodes) {
        for (auto& a : n.args)
            for (auto& s : a.strings) s = decode_encoded_characters(s);
        decode_strings(n.tests);
        decode_strings(n.block);
    }
}

}  // namespace

CompileResult compile(std::string_view text, const CompileLimits& limits) {
    CompileResult out;
    ParseResult parsed = parse(text, limits);
    if (parsed.error) {
        out.error = parsed.error;
        return out;
    }
    Script script;
    // require comes first; encoded-character changes the strings before anything reads them.
    for (const auto& c : parsed.commands) {
        if (c.name != "require") break;
        for (const auto& a : c.args)
            for (const auto& s : a.strings)
                if (s == "encoded-character") script.extensions.insert(s);
    }
    if (script.required("encoded-character")) decode_strings(parsed.commands);
    script.extensions.clear();
    Validator v(script);
    if (auto e = v.block(parsed.commands, script.commands, true)) {
        out.error = e;
        return out;
    }
    out.script = std::move(script);
    return out;
}

}  // namespace ferry::sieve
