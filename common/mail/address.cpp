// Mail addresses: normal form, the parts of local@domain, and the syntax ferry stores and accepts.
#include "common/mail/address.hpp"

namespace ferry {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// RFC 5322 atext, plus octets >= 0x80 so that SMTPUTF8 local parts can be stored.
bool atext(unsigned char c) {
    if (c >= 0x80) return true;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool valid_local_part(std::string_view local) {
    if (local.empty() || local.size() > 64 || local.front() == '.' || local.back() == '.') return false;
    for (size_t i = 0; i < local.size(); ++i) {
        if (local[i] == '.') {
            if (local[i + 1] == '.') return false;  // back() is not '.', so i + 1 is in range
        } else if (!atext(static_cast<unsigned char>(local[i]))) {
            return false;
        }
    }
    return true;
}

bool valid_label(std::string_view label) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok) return false;
    }
    return true;
}

}  // namespace

std::string normalize_address(std::string_view address) {
    while (!address.empty() && (address.front() == ' ' || address.front() == '\t')) address.remove_prefix(1);
    while (!address.empty() && (address.back() == ' ' || address.back() == '\t')) address.remove_suffix(1);
    if (address.size() >= 2 && address.front() == '<' && address.back() == '>') address = address.substr(1, address.size() - 2);
    std::string out(address);
    for (char& c : out) c = lower(c);
    return out;
}

std::string domain_of(std::string_view address) {
    auto at = address.rfind('@');
    if (at == std::string_view::npos) return {};
    std::string out(address.substr(at + 1));
    for (char& c : out) c = lower(c);
    return out;
}

std::string local_part_of(std::string_view address) {
    auto at = address.rfind('@');
    return std::string(at == std::string_view::npos ? address : address.substr(0, at));
}

bool valid_domain(std::string_view domain) {
    if (domain.empty() || domain.size() > 253) return false;
    size_t start = 0;
    while (true) {
        size_t dot = domain.find('.', start);
        if (!valid_label(domain.substr(start, dot == std::string_view::npos ? dot : dot - start))) return false;
        if (dot == std::string_view::npos) return true;
        start = dot + 1;
    }
}

bool valid_address(std::string_view address) {
    auto at = address.rfind('@');
    if (address.size() > 254 || at == std::string_view::npos) return false;
    return valid_local_part(address.substr(0, at)) && valid_domain(address.substr(at + 1));
}

}  // namespace ferry
