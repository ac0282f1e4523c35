// The messages AutoReply sends, built from their inputs (pure): the vacation reply, the redirected copy and its loop check.
#include "mda/auto_reply_mail.hpp"

#include <strings.h>

#include "common/mail/date.hpp"
#include "common/mail/header_words.hpp"
#include "mda/sieve/message.hpp"

namespace ferry::mda {

namespace {

bool same_address(std::string_view a, std::string_view b) {
    return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// A value for one header line: CR and LF become spaces.
std::string one_line(std::string_view value) {
    std::string s(value);
    for (char& c : s)
        if (c == '\r' || c == '\n') c = ' ';
    return s;
}

// Text with LF line ends that ends in one.
std::string lf_text(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 1);
    for (size_t i = 0; i < text.size(); ++i)
        if (!(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) out += text[i];
    if (out.empty() || out.back() != '\n') out += '\n';
    return out;
}

bool ascii(std::string_view s) {
    for (unsigned char c : s)
        if (c > 0x7e) return false;
    return true;
}

// The From: value: an address alone stays bare; "Name <address>" as given, its name encoded when not ASCII.
std::string from_value(std::string_view from) {
    std::string f = one_line(from);
    size_t lt = f.rfind('<');
    if (lt == std::string::npos || lt == 0 || ascii(f)) return f;
    std::string name = f.substr(0, lt);
    while (!name.empty() && name.back() == ' ') name.pop_back();
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
    return mail::encode_header_words(name) + " " + f.substr(lt);
}

}  // namespace

std::optional<std::string> redirect_loop(std::string_view message, std::string_view account, size_t max_delivered_to) {
    sieve::MessageView view(message);
    for (const auto& v : view.values(kRedirectedField))
        if (same_address(v, account)) return "it was redirected by " + std::string(account) + " before (a loop)";
    size_t hops = view.values("Delivered-To").size();
    if (max_delivered_to > 0 && hops >= max_delivered_to)
        return "it carries " + std::to_string(hops) + " Delivered-To fields (a loop, the limit is " +
               std::to_string(max_delivered_to) + ")";
    return std::nullopt;
}

std::string redirected_message(std::string_view message, std::string_view account) {
    return std::string(kRedirectedField) + ": " + one_line(account) + "\n" + std::string(message);
}

ThreadIds thread_ids(std::string_view message) {
    sieve::MessageView view(message);
    ThreadIds ids;
    if (auto v = view.values("Message-ID"); !v.empty()) ids.message_id = v.front();
    if (auto v = view.values("References"); !v.empty()) ids.references = v.front();
    return ids;
}

std::string compose_vacation_reply(const VacationReply& r) {
    std::string out;
    out += "From: " + from_value(r.from) + "\n";
    out += "To: <" + one_line(r.to) + ">\n";
    out += "Subject: " + mail::encode_header_words(r.subject) + "\n";
    out += "Date: " + mail::rfc5322_date(r.now) + "\n";
    out += "Message-ID: " + one_line(r.message_id) + "\n";
    std::string parent = one_line(r.original_message_id);
    if (!parent.empty()) {
        out += "In-Reply-To: " + parent + "\n";
        std::string refs = one_line(r.original_references);
        out += "References: " + (refs.empty() ? parent : refs + "\n " + parent) + "\n";
    }
    out += "Auto-Submitted: auto-replied\n";
    out += "MIME-Version: 1.0\n";
    if (r.mime) return out + lf_text(r.reason);
    out += "Content-Type: text/plain; charset=utf-8\n";
    out += std::string("Content-Transfer-Encoding: ") + (ascii(r.reason) ? "7bit" : "8bit") + "\n\n";
    return out + lf_text(r.reason);
}

}  // namespace ferry::mda
