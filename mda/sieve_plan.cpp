// What ferry-mda does with a message once its Sieve scripts ran: folders, flags, header edits, junk filing (pure).
#include "mda/sieve_plan.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/auth/sasl.hpp"
#include "common/store/folders.hpp"
#include "mda/sieve/message.hpp"

namespace ferry::mda {

namespace {

bool ieq(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string sorted_union(std::string a, std::string_view b) {
    for (char c : b)
        if (a.find(c) == std::string::npos) a += c;
    std::sort(a.begin(), a.end());
    return a;
}

// Folder names compare as the store names them: INBOX in any case is INBOX.
bool same_folder(std::string_view a, std::string_view b) {
    return (store::is_inbox(a) && store::is_inbox(b)) || a == b;
}

void add_copy(DeliveryPlan& plan, FolderCopy c) {
    if (store::is_inbox(c.folder)) c.folder = "INBOX";
    for (auto& have : plan.copies)
        if (same_folder(have.folder, c.folder)) {
            have.flags = sorted_union(have.flags, c.flags);
            have.create = have.create || c.create;
            return;
        }
    plan.copies.push_back(std::move(c));
}

// RFC 2047 encoded word for a value that is not all ASCII (RFC 5293 4: the value is UTF-8).
std::string encode_value(const std::string& value) {
    bool ascii = std::all_of(value.begin(), value.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    if (ascii) return value;
    return "=?UTF-8?B?" + sasl::base64_encode(value) + "?=";
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
    return s;
}

// An Authentication-Results value without its comments (RFC 5322 3.2.2: nested, with quoted pairs).
std::string without_comments(std::string_view v) {
    std::string out;
    int depth = 0;
    bool quoted = false;
    for (size_t i = 0; i < v.size(); ++i) {
        char c = v[i];
        if (c == '\\' && (depth > 0 || quoted) && i + 1 < v.size()) {
            if (depth == 0) out.append(v.substr(i, 2));
            ++i;
        } else if (c == '"' && depth == 0) {
            quoted = !quoted;
            out += c;
        } else if (c == '(' && !quoted) {
            ++depth;
        } else if (c == ')' && !quoted && depth > 0) {
            --depth;
            if (depth == 0) out += ' ';
        } else if (depth == 0) {
            out += c == '\t' || c == '\n' || c == '\r' ? ' ' : c;
        }
    }
    return out;
}

// The words of `s` between blanks.
std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    size_t at = 0;
    while (at < s.size()) {
        size_t start = s.find_first_not_of(' ', at);
        if (start == std::string_view::npos) break;
        size_t end = s.find(' ', start);
        out.push_back(s.substr(start, end == std::string_view::npos ? end : end - start));
        at = end == std::string_view::npos ? s.size() : end;
    }
    return out;
}

std::optional<double> parse_score(std::string_view text) {
    text = trim(text);
    double v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) return std::nullopt;
    return v;
}

}  // namespace

DeliveryPlan keep_plan(const std::optional<std::string>& junk) {
    DeliveryPlan plan;
    plan.copies.push_back(FolderCopy{junk.value_or("INBOX"), "", junk.has_value(), true});
    return plan;
}

std::string maildir_flags(const std::vector<std::string>& flags) {
    static const std::pair<const char*, char> kLetters[] = {
        {"\\seen", 'S'}, {"\\flagged", 'F'}, {"\\answered", 'R'}, {"\\deleted", 'T'}, {"\\draft", 'D'}};
    std::string out;
    for (const auto& f : flags)
        for (const auto& [name, letter] : kLetters)
            if (ieq(f, name) && out.find(letter) == std::string::npos) out += letter;
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<sieve::Action> combine(const std::vector<sieve::Outcome>& outcomes) {
    std::vector<sieve::Action> out;
    std::optional<sieve::Action> implicit;
    bool cancelled = false;
    for (const auto& o : outcomes) {
        bool kept = false;
        for (const auto& a : o.actions) {
            if (a.implicit) {
                implicit = a;
                kept = true;
            } else {
                out.push_back(a);
            }
        }
        cancelled = cancelled || !kept;
    }
    if (implicit && !cancelled) out.push_back(*implicit);
    // A discard beside a delivery of another script says nothing (RFC 5228 4.4, across the scripts).
    bool delivered = std::any_of(out.begin(), out.end(), [](const sieve::Action& a) {
        using T = sieve::Action::Type;
        return a.type == T::keep || a.type == T::fileinto || a.type == T::redirect;
    });
    if (delivered) std::erase_if(out, [](const sieve::Action& a) { return a.type == sieve::Action::Type::discard; });
    return out;
}

DeliveryPlan make_plan(const std::vector<sieve::Action>& actions, const std::optional<std::string>& junk) {
    using T = sieve::Action::Type;
    DeliveryPlan plan;
    for (const auto& a : actions) {
        switch (a.type) {
        case T::keep:
            if (a.implicit && junk) add_copy(plan, FolderCopy{*junk, maildir_flags(a.flags), true, true});
            else add_copy(plan, FolderCopy{"INBOX", maildir_flags(a.flags), false, a.implicit});
            break;
        case T::fileinto: add_copy(plan, FolderCopy{a.mailbox, maildir_flags(a.flags), a.create, false}); break;
        case T::redirect: plan.redirects.push_back(a); break;
        case T::discard: plan.discard = true; break;
        case T::reject:
        case T::ereject: plan.reject = a.text; break;
        case T::vacation: plan.vacations.push_back(a.vacation); break;
        case T::addheader:
        case T::deleteheader: plan.edits.push_back(a); break;
        }
    }
    return plan;
}

void add_inbox(DeliveryPlan& plan, const std::string& flags) { add_copy(plan, FolderCopy{"INBOX", flags, false, false}); }

EditedHeader apply_edits(std::string_view message, const std::vector<sieve::Action>& edits) {
    sieve::MessageView view(message);
    EditedHeader out;
    bool has_blank = view.body.data() != nullptr;  // MessageView saw the empty line
    out.replaced = has_blank ? static_cast<size_t>(view.body.data() - message.data()) : message.size();
    auto& fields = view.fields;
    for (const auto& e : edits) {
        if (e.type == sieve::Action::Type::addheader) {
            sieve::HeaderField f{e.field, " " + encode_value(e.value) + "\n"};
            if (e.last) fields.push_back(std::move(f));
            else fields.insert(fields.begin(), std::move(f));
        } else if (e.type == sieve::Action::Type::deleteheader) {
            std::vector<size_t> at;
            for (size_t i = 0; i < fields.size(); ++i)
                if (ieq(fields[i].name, e.field)) at.push_back(i);
            std::vector<size_t> doomed;
            for (size_t k : e.occurrences)
                if (k >= 1 && k <= at.size()) doomed.push_back(at[k - 1]);
            std::sort(doomed.rbegin(), doomed.rend());
            for (size_t i : doomed) fields.erase(fields.begin() + static_cast<std::ptrdiff_t>(i));
        }
    }
    for (const auto& f : fields) {
        out.header += f.name + ":" + f.raw;
        if (out.header.back() != '\n') out.header += '\n';
    }
    out.header += '\n';
    return out;
}

std::optional<double> spam_score(std::string_view message) {
    sieve::MessageView view(message);
    for (const auto& f : view.fields)
        if (ieq(f.name, "X-Spam-Score")) return parse_score(f.raw);
    return std::nullopt;
}

bool dmarc_quarantined(std::string_view message, std::string_view authserv_id) {
    sieve::MessageView view(message);
    for (const auto& f : view.fields) {
        if (!ieq(f.name, "Authentication-Results")) continue;
        std::string value = without_comments(f.raw);
        std::string_view v = value;
        size_t semi = v.find(';');
        auto id = words(v.substr(0, semi));
        if (semi == std::string_view::npos || id.empty() || !ieq(id.front(), authserv_id)) continue;
        while (semi != std::string_view::npos) {  // each resinfo: "dmarc=fail header.from=... policy.dmarc=..."
            v.remove_prefix(semi + 1);
            semi = v.find(';');
            auto w = words(v.substr(0, semi));
            if (w.empty() || w.front().size() < 6 || !ieq(w.front().substr(0, 6), "dmarc=")) continue;
            for (auto word : w)
                if (ieq(word, "policy.dmarc=quarantine")) return true;
        }
    }
    return false;
}

std::optional<double> junk_threshold_of(std::string_view map_text, std::string_view domain) {
    while (!map_text.empty()) {
        size_t eol = map_text.find('\n');
        std::string_view line = trim(map_text.substr(0, eol));
        map_text = eol == std::string_view::npos ? std::string_view() : map_text.substr(eol + 1);
        if (line.empty() || line[0] == '#') continue;
        size_t sp = line.find_first_of(" \t");
        if (sp == std::string_view::npos) continue;
        if (ieq(line.substr(0, sp), domain)) return parse_score(line.substr(sp + 1));
    }
    return std::nullopt;
}

}  // namespace ferry::mda
