// What a Sieve script decides, written out one action a line for tests and ferry-sieve.
#include "mda/sieve/actions.hpp"

namespace ferry::sieve {

namespace {

std::string quote(const std::string& s) {
    std::string q = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') q += '\\';
        q += c;
    }
    return q + '"';
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
    return s;
}

}  // namespace

std::string describe(const Action& a) {
    using T = Action::Type;
    std::string s;
    auto flags = [&] {
        if (!a.flags.empty()) s += " :flags " + quote(join(a.flags));
    };
    switch (a.type) {
        case T::keep:
            s = a.implicit ? "keep (implicit)" : "keep";
            flags();
            break;
        case T::fileinto:
            s = "fileinto " + quote(a.mailbox);
            if (a.create) s += " :create";
            if (a.copy) s += " :copy";
            flags();
            break;
        case T::redirect: s = "redirect " + quote(a.address) + (a.copy ? " :copy" : ""); break;
        case T::discard: s = "discard"; break;
        case T::reject: s = "reject " + quote(a.text); break;
        case T::ereject: s = "ereject " + quote(a.text); break;
        case T::vacation:
            s = "vacation to " + quote(a.vacation.to) + " :days " + std::to_string(a.vacation.days) + " :subject " +
                quote(a.vacation.subject) + " :handle " + quote(a.vacation.handle) + " " + quote(a.vacation.reason);
            if (!a.vacation.suppressed.empty()) s += " (suppressed: " + a.vacation.suppressed + ")";
            break;
        case T::addheader: s = "addheader " + std::string(a.last ? ":last " : "") + quote(a.field) + " " + quote(a.value); break;
        case T::deleteheader: {
            s = "deleteheader " + quote(a.field);
            for (size_t o : a.occurrences) s += " " + std::to_string(o);
            break;
        }
    }
    return s;
}

}  // namespace ferry::sieve
