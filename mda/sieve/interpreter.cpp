// The Sieve interpreter: control flow, tests, variables, flags and actions with the RFC 5228 implicit keep and conflict rules.
#include "mda/sieve/interpreter.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

#include "common/base/hash.hpp"
#include "common/mail/address.hpp"
#include "mda/sieve/match.hpp"
#include "mda/sieve/message.hpp"
#include "mda/sieve/strings.hpp"

namespace ferry::sieve {

namespace {

// RFC 5293 4.3/5: these are never added or deleted by a script.
bool protected_field(std::string_view name) {
    std::string n = ascii_lower(name);
    return n == "received" || n == "auto-submitted";
}

std::vector<std::string> split_flags(const std::vector<std::string>& in) {
    std::vector<std::string> out;
    for (const auto& s : in) {
        size_t i = 0;
        while (i < s.size()) {
            while (i < s.size() && s[i] == ' ') ++i;
            size_t j = s.find(' ', i);
            if (j == std::string::npos) j = s.size();
            if (j > i) {
                std::string f = s.substr(i, j - i);
                bool dup = false;
                for (const auto& o : out) dup = dup || ascii_lower(o) == ascii_lower(f);
                if (!dup) out.push_back(std::move(f));
            }
            i = j;
        }
    }
    return out;
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
    return s;
}

// Mailbox names are case-sensitive, but for INBOX (RFC 3501 5.1).
bool same_mailbox(const std::string& a, const std::string& b) {
    return a == b || (ascii_lower(a) == "inbox" && ascii_lower(b) == "inbox");
}

// The local part is case-sensitive (RFC 5321 2.4), the domain is not.
bool same_address(const std::string& a, const std::string& b) {
    size_t at_a = a.rfind('@'), at_b = b.rfind('@');
    return a.substr(0, at_a) == b.substr(0, at_b) &&
           ascii_lower(at_a == std::string::npos ? "" : a.substr(at_a)) ==
               ascii_lower(at_b == std::string::npos ? "" : b.substr(at_b));
}

enum class Flow { next, stop };

class Interpreter {
public:
    Interpreter(const Script& s, const RunInput& in, const RunLimits& l)
        : s_(s), in_(in), limits_(l), msg_(in.message), vars_on_(s.required("variables")) {
        budget_.max = l.max_steps;
    }

    Result<Outcome> run() {
        exec(s_.commands);
        if (!failed_ && budget_.exceeded())
            fail(s_.commands.empty() ? Pos{} : s_.commands.back().pos,
                 "the script took more than " + std::to_string(limits_.max_steps) + " steps");
        if (failed_) return err_;
        if (implicit_keep_) {
            Action a{Action::Type::keep};
            a.mailbox = "INBOX";
            a.flags = split_flags({flags_});
            a.implicit = true;
            if (!add(std::move(a), s_.commands.empty() ? Pos{} : s_.commands.back().pos)) return err_;
        }
        // discard only cancels the implicit keep: beside a delivery it says nothing (RFC 5228 4.4).
        auto& acts = out_.actions;
        bool delivered = std::any_of(acts.begin(), acts.end(), [](const Action& a) {
            return a.type == Action::Type::keep || a.type == Action::Type::fileinto || a.type == Action::Type::redirect;
        });
        if (delivered)
            acts.erase(std::remove_if(acts.begin(), acts.end(),
                                      [](const Action& a) { return a.type == Action::Type::discard; }),
                       acts.end());
        return std::move(out_);
    }

private:
    // ---- errors and budget
    void fail(Pos at, std::string msg) {
        if (failed_) return;
        failed_ = true;
        err_ = make_error(0, "", "line " + std::to_string(at.line) + ": " + msg);
    }
    bool step(const Node& n, uint64_t cost = 1) {
        if (!budget_.spend(cost)) fail(n.pos, "the script took more than " + std::to_string(limits_.max_steps) + " steps");
        return !failed_;
    }
    bool over_budget(const Node& n) {
        if (budget_.exceeded()) fail(n.pos, "the script took more than " + std::to_string(limits_.max_steps) + " steps");
        return failed_;
    }

    // ---- variables (RFC 5229)
    std::string expand(const std::string& s) {
        if (!vars_on_ || s.find("${") == std::string::npos) return s;
        std::string out;
        size_t i = 0;
        while (i < s.size()) {
            size_t start = s.find("${", i);
            size_t close = start == std::string::npos ? start : s.find('}', start + 2);
            if (start == std::string::npos || close == std::string::npos) break;
            out.append(s, i, start - i);
            std::string name = s.substr(start + 2, close - start - 2);
            if (valid_variable_name(name, true)) {
                out += variable(name);
                i = close + 1;
            } else {
                out += "${";
                i = start + 2;
            }
            if (!budget_.spend(1 + out.size() / 256)) return out;  // the caller's next step reports it
        }
        out.append(s, std::min(i, s.size()), std::string::npos);
        return out;
    }
    std::vector<std::string> expand(const std::vector<std::string>& v) {
        std::vector<std::string> out;
        out.reserve(v.size());
        for (const auto& s : v) out.push_back(expand(s));
        return out;
    }
    std::string variable(const std::string& name) {
        if (name[0] >= '0' && name[0] <= '9') {
            size_t n = name.size() > 2 ? 100 : std::stoul(name);
            return n < match_.size() ? match_[n] : std::string();
        }
        auto it = vars_.find(ascii_lower(name));
        return it == vars_.end() ? std::string() : it->second;
    }
    void set_variable(const std::string& name, std::string value) {
        if (value.size() > limits_.max_variable_size) {
            value.resize(limits_.max_variable_size);
            // Never cut a UTF-8 sequence in half (RFC 5229 5).
            while (!value.empty() && (static_cast<unsigned char>(value.back()) & 0xC0) == 0x80) value.pop_back();
            if (!value.empty() && static_cast<unsigned char>(value.back()) >= 0xC0) value.pop_back();
        }
        vars_[ascii_lower(name)] = std::move(value);
    }

    // ---- control
    Flow exec(const std::vector<Node>& block) {
        bool chain_done = true;
        for (const Node& n : block) {
            if (!step(n)) return Flow::stop;
            Flow f = Flow::next;
            switch (n.op) {
                case Op::if_:
                case Op::elsif:
                    if (n.op == Op::if_) chain_done = false;
                    if (chain_done) break;
                    if (test(n.tests[0])) {
                        chain_done = true;
                        f = exec(n.block);
                    }
                    break;
                case Op::else_:
                    if (!chain_done) f = exec(n.block);
                    chain_done = true;
                    break;
                default:
                    f = command(n);
                    over_budget(n);
                    break;
            }
            if (failed_ || f == Flow::stop) return Flow::stop;
        }
        return Flow::next;
    }

    Flow command(const Node& n) {
        switch (n.op) {
            case Op::stop: out_.stopped = true; return Flow::stop;
            case Op::keep: keep(n); break;
            case Op::discard: implicit_keep_ = false, add(Action{Action::Type::discard}, n.pos); break;
            case Op::fileinto: fileinto(n); break;
            case Op::redirect: redirect(n); break;
            case Op::reject:
            case Op::ereject: reject(n); break;
            case Op::set: set(n); break;
            case Op::setflag:
            case Op::addflag:
            case Op::removeflag: flags(n); break;
            case Op::vacation: vacation(n); break;
            case Op::addheader: addheader(n); break;
            case Op::deleteheader: deleteheader(n); break;
            default: fail(n.pos, "not a command"); break;
        }
        return Flow::next;
    }

    // ---- actions
    std::vector<std::string> action_flags(const Node& n) {
        if (const Argument* f = n.tag("flags")) return split_flags(expand(f->strings));
        return split_flags({flags_});
    }

    void keep(const Node& n) {
        Action a{Action::Type::keep};
        a.mailbox = "INBOX";
        a.flags = action_flags(n);
        implicit_keep_ = false;
        add(std::move(a), n.pos);
    }

    void fileinto(const Node& n) {
        Action a{Action::Type::fileinto};
        a.mailbox = expand(n.args[0].strings[0]);
        if (a.mailbox.empty()) return fail(n.pos, "fileinto an empty mailbox name");
        a.flags = action_flags(n);
        a.create = n.has("create");
        a.copy = n.has("copy");
        if (!a.copy) implicit_keep_ = false;
        add(std::move(a), n.pos);
    }

    void redirect(const Node& n) {
        Action a{Action::Type::redirect};
        std::string given = expand(n.args[0].strings[0]);
        auto address = redirect_address(given);
        if (!address) return fail(n.pos, "redirect to a bad address '" + given + "'");
        a.address = *address;
        a.copy = n.has("copy");
        if (!a.copy) implicit_keep_ = false;
        add(std::move(a), n.pos);
    }

    void reject(const Node& n) {
        Action a{n.op == Op::reject ? Action::Type::reject : Action::Type::ereject};
        a.text = expand(n.args[0].strings[0]);
        implicit_keep_ = false;
        add(std::move(a), n.pos);
    }

    // Conflicts, duplicates and limits, then the action joins the list (RFC 5228 4.2, 4.5; RFC 5429 2.1).
    bool add(Action a, Pos at) {
        using T = Action::Type;
        auto delivers = [](T t) { return t == T::keep || t == T::fileinto || t == T::redirect || t == T::vacation; };
        bool rejects = a.type == T::reject || a.type == T::ereject;
        for (auto& o : out_.actions) {
            bool o_rejects = o.type == T::reject || o.type == T::ereject;
            if ((rejects && (o_rejects || (delivers(o.type) && !o.implicit))) || (o_rejects && delivers(a.type))) {
                fail(at, "reject cannot be combined with another reject, keep, fileinto, redirect or vacation");
                return false;
            }
            if (a.type == T::vacation && o.type == T::vacation) {
                fail(at, "vacation used twice");
                return false;
            }
            bool same_box = (a.type == T::keep || a.type == T::fileinto) && (o.type == T::keep || o.type == T::fileinto) &&
                            same_mailbox(a.mailbox, o.mailbox);
            if (same_box || (a.type == T::redirect && o.type == T::redirect && same_address(a.address, o.address)) ||
                (a.type == T::discard && o.type == T::discard)) {
                // Delivering twice to one place is once; the later flags win (RFC 5232 5).
                if (same_box && !a.implicit) o.flags = a.flags;
                o.create = o.create || a.create;
                if (o.type == T::fileinto && a.type == T::keep) o.type = T::keep, o.mailbox = "INBOX";
                return true;
            }
        }
        if (a.type == T::redirect && ++redirects_ > limits_.max_redirects) {
            fail(at, "more than " + std::to_string(limits_.max_redirects) + " redirects");
            return false;
        }
        if (out_.actions.size() >= limits_.max_actions) {
            fail(at, "more than " + std::to_string(limits_.max_actions) + " actions");
            return false;
        }
        out_.actions.push_back(std::move(a));
        return true;
    }

    void set(const Node& n) {
        std::string name = expand(n.args[0].strings[0]);
        if (!valid_variable_name(name, false)) return fail(n.pos, "bad variable name '" + name + "'");
        std::string v = expand(n.args[1].strings[0]);
        // RFC 5229 4.1: modifiers apply from the highest precedence down.
        if (n.has("lower")) v = ascii_lower(v);
        if (n.has("upper")) v = ascii_upper(v);
        if (n.has("lowerfirst") && !v.empty()) v[0] = ascii_lower(v.substr(0, 1))[0];
        if (n.has("upperfirst") && !v.empty()) v[0] = ascii_upper(v.substr(0, 1))[0];
        if (n.has("quotewildcard")) {
            std::string q;
            for (char c : v) {
                if (c == '*' || c == '?' || c == '\\') q += '\\';
                q += c;
            }
            v = std::move(q);
        }
        if (n.has("length")) {
            size_t chars = 0;
            for (size_t i = 0; i < v.size(); i += utf8_length(static_cast<unsigned char>(v[i]))) ++chars;
            v = std::to_string(chars);
        }
        set_variable(name, std::move(v));
    }

    // RFC 5232 3: the internal variable, or a named one.
    void flags(const Node& n) {
        std::string var = n.args.size() == 2 ? expand(n.args[0].strings[0]) : std::string();
        std::vector<std::string> given = split_flags(expand(n.args.back().strings));
        std::vector<std::string> cur = split_flags({var.empty() ? flags_ : variable(var)});
        std::vector<std::string> next;
        if (n.op == Op::setflag) {
            next = given;
        } else if (n.op == Op::addflag) {
            next = cur;
            next.insert(next.end(), given.begin(), given.end());
        } else {
            for (const auto& f : cur) {
                bool gone = false;
                for (const auto& g : given) gone = gone || ascii_lower(f) == ascii_lower(g);
                if (!gone) next.push_back(f);
            }
        }
        std::string value = join(split_flags(next));
        if (var.empty()) flags_ = value;
        else set_variable(var, value);
    }

    void vacation(const Node& n) {
        Action a{Action::Type::vacation};
        Vacation& v = a.vacation;
        v.reason = expand(n.args[0].strings[0]);
        if (const Argument* d = n.tag("days")) v.days = d->number;
        v.days = std::clamp(v.days, limits_.min_vacation_days, limits_.max_vacation_days);
        std::vector<std::string> subjects = msg_.values("subject");
        v.subject = n.has("subject") ? expand(n.tag("subject")->strings[0])
                                     : "Auto: " + (subjects.empty() ? std::string() : subjects[0]);
        if (n.has("from")) v.from = expand(n.tag("from")->strings[0]);
        if (n.has("addresses")) v.addresses = expand(n.tag("addresses")->strings);
        v.mime = n.has("mime");
        if (n.has("handle")) {
            v.handle = expand(n.tag("handle")->strings[0]);
        } else {
            char h[17];
            std::snprintf(h, sizeof h, "%016llx",
                          static_cast<unsigned long long>(fnv1a64(v.reason + '\0' + (n.has("subject") ? v.subject : "") +
                                                                  '\0' + v.from + '\0' + (v.mime ? "mime" : ""))));
            v.handle = h;
        }
        v.to = in_.envelope.from;
        v.suppressed = vacation_suppressed(v);
        add(std::move(a), n.pos);
    }

    std::string vacation_suppressed(const Vacation& v) {
        if (v.to.empty()) return "null sender";
        std::string local = ascii_lower(address_part(v.to, AddressPart::localpart).value_or(""));
        if (local == "mailer-daemon" || local == "listserv" || local == "majordomo" || local.starts_with("owner-") ||
            local.ends_with("-request"))
            return "sender is a list or a daemon";
        for (const auto& a : msg_.values("auto-submitted"))
            if (ascii_lower(a).substr(0, 2) != "no") return "Auto-Submitted message";
        for (const auto& p : msg_.values("precedence")) {
            std::string l = ascii_lower(p);
            if (l == "bulk" || l == "list" || l == "junk") return "Precedence: " + l;
        }
        for (const auto& f : msg_.fields)
            if (ascii_lower(f.name).starts_with("list-")) return "list message (" + f.name + ")";
        std::set<std::string> mine;
        for (const auto& a : {in_.envelope.to, in_.envelope.original_to})
            if (!a.empty()) mine.insert(normalize_address(a));
        for (const auto& a : in_.own_addresses) mine.insert(normalize_address(a));
        for (const auto& a : v.addresses) mine.insert(normalize_address(a));
        if (mine.count(normalize_address(v.to))) return "sender is the user";
        for (const char* h : {"to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"})
            for (const auto& value : msg_.values(h))
                for (const auto& a : header_addresses(value))
                    if (mine.count(normalize_address(a))) return {};
        return "the user is not in To, Cc or Bcc";
    }

    void addheader(const Node& n) {
        std::string name = expand(n.args[0].strings[0]), value = expand(n.args[1].strings[0]);
        if (!valid_field_name(name)) return fail(n.pos, "bad header field name '" + name + "'");
        if (protected_field(name)) return;
        HeaderField f{name, " " + value};
        if (n.has("last")) msg_.fields.push_back(f);
        else msg_.fields.insert(msg_.fields.begin(), f);
        Action a{Action::Type::addheader};
        a.field = name;
        a.value = value;
        a.last = n.has("last");
        add(std::move(a), n.pos);
    }

    void deleteheader(const Node& n) {
        std::string name = expand(n.args[0].strings[0]);
        if (!valid_field_name(name) || protected_field(name)) return;
        std::vector<size_t> at;  // indexes into fields
        for (size_t i = 0; i < msg_.fields.size(); ++i)
            if (ascii_lower(msg_.fields[i].name) == ascii_lower(name)) at.push_back(i);
        std::vector<size_t> chosen;  // positions within `at`
        for (size_t k = 0; k < at.size(); ++k) chosen.push_back(k);
        if (const Argument* idx = n.tag("index")) {
            chosen.clear();
            if (idx->number <= at.size()) chosen.push_back(n.has("last") ? at.size() - idx->number : idx->number - 1);
        }
        if (n.args.size() == 2) {
            std::vector<std::string> keys = expand(n.args[1].strings);
            std::vector<size_t> kept;
            for (size_t k : chosen) {
                MessageView one("");
                one.fields.push_back(msg_.fields[at[k]]);
                if (match_any(n, one.values(name), keys, nullptr, budget_)) kept.push_back(k);
            }
            chosen = kept;
        }
        if (over_budget(n) || chosen.empty()) return;
        Action a{Action::Type::deleteheader};
        a.field = name;
        for (size_t k : chosen) a.occurrences.push_back(k + 1);
        for (auto it = chosen.rbegin(); it != chosen.rend(); ++it) msg_.fields.erase(msg_.fields.begin() + at[*it]);
        add(std::move(a), n.pos);
    }

    // ---- tests
    bool test(const Node& t) {
        if (!step(t)) return false;
        bool r = evaluate(t);
        if (over_budget(t)) return false;
        return r;
    }

    bool evaluate(const Node& t) {
        switch (t.op) {
            case Op::true_: return true;
            case Op::false_: return false;
            case Op::not_: return !test(t.tests[0]) && !failed_;
            case Op::allof:
                for (const auto& x : t.tests)
                    if (!test(x)) return false;
                return true;
            case Op::anyof:
                for (const auto& x : t.tests)
                    if (test(x)) return true;
                return false;
            case Op::exists:
                for (const auto& name : expand(t.args[0].strings))
                    if (!msg_.exists(name)) return false;
                return true;
            case Op::size: {
                uint64_t size = in_.size ? in_.size : in_.message.size(), limit = t.args[0].number;
                return t.has("over") ? size > limit : size < limit;
            }
            case Op::header: return match(t, indexed(t, header_values(t, expand(t.args[0].strings))), 1);
            case Op::address: return match(t, address_values(t), 1);
            case Op::envelope: return match(t, envelope_values(t), 1);
            case Op::body: return body(t);
            case Op::string: return string_test(t);
            case Op::hasflag: return hasflag(t);
            case Op::date:
            case Op::currentdate: return date(t);
            case Op::environment: {
                auto it = in_.environment.find(ascii_lower(expand(t.args[0].strings[0])));
                if (it == in_.environment.end()) return match(t, {}, 1);
                return match(t, {it->second}, 1);
            }
            case Op::mailboxexists:
                for (const auto& m : expand(t.args[0].strings))
                    if (!in_.mailbox_exists || !in_.mailbox_exists(m)) return false;
                return true;
            case Op::duplicate: return duplicate(t);
            default: fail(t.pos, "not a test"); return false;
        }
    }

    bool match(const Node& t, const std::vector<std::string>& values, size_t keys_at) {
        std::vector<std::string> keys = expand(t.args[keys_at].strings);
        std::vector<std::string> caps;
        bool r = match_any(t, values, keys, vars_on_ ? &caps : nullptr, budget_);
        if (r && vars_on_ && t.match == MatchType::matches) match_ = std::move(caps);
        return r;
    }

    std::vector<std::string> header_values(const Node&, const std::vector<std::string>& names) {
        std::vector<std::string> out;
        for (const auto& n : names) {
            auto v = msg_.values(n);
            out.insert(out.end(), v.begin(), v.end());
        }
        return out;
    }

    // RFC 5260 6: :index picks one field occurrence, counted from the end with :last.
    std::vector<std::string> indexed(const Node& t, std::vector<std::string> values) {
        const Argument* idx = t.tag("index");
        if (!idx) return values;
        if (idx->number > values.size()) return {};
        return {values[t.has("last") ? values.size() - idx->number : idx->number - 1]};
    }

    std::vector<std::string> parts_of(const Node& t, const std::vector<std::string>& addresses) {
        std::vector<std::string> out;
        for (const auto& a : addresses)
            if (auto p = address_part(a, t.part, in_.subaddress_delimiters)) out.push_back(*p);
        return out;
    }

    std::vector<std::string> address_values(const Node& t) {
        std::vector<std::string> addresses;
        std::vector<std::string> names;
        for (const auto& name : expand(t.args[0].strings))
            if (is_address_field(name)) names.push_back(name);
        for (const auto& value : indexed(t, header_values(t, names))) {
            auto list = header_addresses(value);
            addresses.insert(addresses.end(), list.begin(), list.end());
        }
        return parts_of(t, addresses);
    }

    std::vector<std::string> envelope_values(const Node& t) {
        std::vector<std::string> addresses;
        for (const auto& part : expand(t.args[0].strings)) {
            std::string p = ascii_lower(part);
            if (p == "from") addresses.push_back(in_.envelope.from);
            else if (p == "to") addresses.push_back(in_.envelope.to);
            else if (p == "auth" && !in_.envelope.auth.empty()) addresses.push_back(in_.envelope.auth);
        }
        return parts_of(t, addresses);
    }

    bool body(const Node& t) {
        std::vector<std::string> types;
        if (const Argument* c = t.tag("content")) types = expand(c->strings);
        // Many rules look at the same body: it is decoded once per transform and type list.
        std::string key = std::to_string(static_cast<int>(t.transform));
        for (const auto& type : types) key += '\0' + type;
        auto it = bodies_.find(key);
        if (it == bodies_.end()) it = bodies_.emplace(key, body_texts(in_.message, t.transform, types, budget_)).first;
        // The body test leaves match variables alone, as Pigeonhole does (RFC 5173 does not name them).
        return match_any(t, it->second, expand(t.args[0].strings), nullptr, budget_);
    }

    bool string_test(const Node& t) {
        std::vector<std::string> values = expand(t.args[0].strings);
        // RFC 5229 5: for :count, empty strings are not counted.
        if (t.match == MatchType::count) values.erase(std::remove(values.begin(), values.end(), ""), values.end());
        return match(t, values, 1);
    }

    bool hasflag(const Node& t) {
        std::vector<std::string> sources;
        if (t.args.size() == 2) {
            for (const auto& v : expand(t.args[0].strings)) sources.push_back(variable(v));
        } else {
            sources.push_back(flags_);
        }
        std::vector<std::string> keys = split_flags(expand(t.args.back().strings));
        std::vector<std::string> caps;
        bool r = match_any(t, split_flags(sources), keys, vars_on_ ? &caps : nullptr, budget_);
        if (r && vars_on_ && t.match == MatchType::matches) match_ = std::move(caps);
        return r;
    }

    bool date(const Node& t) {
        bool current = t.op == Op::currentdate;
        std::optional<int> zone;
        if (const Argument* z = t.tag("zone")) {
            zone = parse_zone(expand(z->strings[0]));
            if (!zone) return false;
        }
        std::string part = expand(t.args[current ? 0 : 1].strings[0]);
        std::vector<std::string> values;
        if (current) {
            if (auto v = date_part(in_.now, zone.value_or(in_.local_zone), part)) values.push_back(*v);
        } else {
            std::string field = expand(t.args[0].strings[0]);
            for (const auto& h : indexed(t, header_values(t, {field}))) {
                // RFC 5260 4.2: a Received field's date follows its last ";".
                size_t semi = ascii_lower(field) == "received" ? h.rfind(';') : std::string::npos;
                auto when = parse_date_time(semi == std::string::npos ? h : std::string_view(h).substr(semi + 1));
                if (!when) continue;
                int show = t.has("originalzone") ? when->zone : zone.value_or(in_.local_zone);
                if (auto v = date_part(when->seconds, show, part)) values.push_back(*v);
            }
        }
        return match(t, values, current ? 1 : 2);
    }

    bool duplicate(const Node& t) {
        DuplicateQuery q;
        if (const Argument* h = t.tag("handle")) q.handle = expand(h->strings[0]);
        if (const Argument* u = t.tag("uniqueid")) {
            q.id = expand(u->strings[0]);
        } else {
            auto v = msg_.values(t.has("header") ? expand(t.tag("header")->strings[0]) : "message-id");
            if (v.empty()) return false;
            q.id = v[0];
        }
        if (const Argument* s = t.tag("seconds")) q.seconds = s->number;
        q.last = t.has("last");
        bool seen = in_.duplicate && in_.duplicate(q);
        out_.duplicates.push_back(q);
        return seen;
    }

    const Script& s_;
    const RunInput& in_;
    const RunLimits& limits_;
    MessageView msg_;
    bool vars_on_;
    Budget budget_;
    std::map<std::string, std::string> vars_;
    std::vector<std::string> match_;
    std::string flags_;
    std::map<std::string, std::vector<std::string>> bodies_;
    bool implicit_keep_ = true;
    size_t redirects_ = 0;
    Outcome out_;
    bool failed_ = false;
    Error err_;
};

}  // namespace

Result<Outcome> run(const Script& script, const RunInput& input, const RunLimits& limits) {
    return Interpreter(script, input, limits).run();
}

}  // namespace ferry::sieve
