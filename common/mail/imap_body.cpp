// IMAP ENVELOPE, BODY and BODYSTRUCTURE: the RFC 3501 9 grammar written from a parsed message.
#include "common/mail/imap_body.hpp"

#include <cstring>

namespace ferry::mail {

namespace {

const char kEmptyBody[] = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0";

struct Token {
    enum Kind { atom, quoted, special, literal, comment } kind;
    std::string text;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// RFC 5322 lexical tokens; "." belongs to atoms so that obsolete phrases and dot-atoms stay whole.
std::vector<Token> tokenize(std::string_view s) {
    std::vector<Token> out;
    for (size_t i = 0; i < s.size() && out.size() < 10000;) {
        char c = s[i];
        if (is_space(c)) { ++i; continue; }
        if (c == '"' || c == '(' || c == '[') {
            char close = c == '"' ? '"' : c == '(' ? ')' : ']';
            std::string text = c == '[' ? "[" : "";
            int nest = 1;
            for (++i; i < s.size(); ++i) {
                if (s[i] == '\\' && i + 1 < s.size()) { text += s[++i]; continue; }
                if (c == '(' && s[i] == '(') ++nest;
                if (s[i] == close && --nest == 0) { ++i; break; }
                text += s[i];
            }
            if (c == '[') text += ']';
            out.push_back({c == '"' ? Token::quoted : c == '(' ? Token::comment : Token::literal, text});
            continue;
        }
        if (std::strchr("<>:;@,", c)) {
            out.push_back({Token::special, std::string(1, c)});
            ++i;
            continue;
        }
        size_t start = i;
        while (i < s.size() && !is_space(s[i]) && !std::strchr("<>:;@,\"([", s[i])) ++i;
        out.push_back({Token::atom, std::string(s.substr(start, i - start))});
    }
    return out;
}

class AddressParser {
public:
    explicit AddressParser(std::string_view value) : t_(tokenize(value)) {}

    std::vector<ImapAddress> run() {
        while (i_ < t_.size()) one();
        if (in_group_) out_.push_back({});
        return std::move(out_);
    }

private:
    bool at(const char* special) const {
        return i_ < t_.size() && t_[i_].kind == Token::special && t_[i_].text == special;
    }
    bool at_special() const { return i_ < t_.size() && t_[i_].kind == Token::special; }

    // Words up to the next special; comments are remembered, not part of the words.
    std::vector<const Token*> words() {
        std::vector<const Token*> w;
        for (; i_ < t_.size() && t_[i_].kind != Token::special; ++i_) {
            if (t_[i_].kind == Token::comment) comment_ = t_[i_].text;
            else w.push_back(&t_[i_]);
        }
        return w;
    }
    static std::string join(const std::vector<const Token*>& w, const char* sep) {
        std::string r;
        for (const Token* t : w) {
            if (!r.empty()) r += sep;
            r += t->text;
        }
        return r;
    }
    void add(std::optional<std::string> name, std::optional<std::string> adl, std::string mailbox, std::string host) {
        if (mailbox.empty()) mailbox = "MISSING_MAILBOX";
        if (host.empty()) host = "MISSING_DOMAIN";
        if (!name && comment_ && !comment_->empty()) name = comment_;
        out_.push_back({std::move(name), std::move(adl), std::move(mailbox), std::move(host)});
    }
    static std::optional<std::string> name_of(const std::vector<const Token*>& w) {
        if (w.empty()) return std::nullopt;
        return join(w, " ");
    }

    void one() {
        comment_.reset();
        auto phrase = words();
        if (at(":")) {
            ++i_;
            if (in_group_) out_.push_back({});
            out_.push_back({std::nullopt, std::nullopt, join(phrase, " "), std::nullopt});
            in_group_ = true;
            return;
        }
        if (at("<")) angle(phrase);
        else if (at("@")) spec(phrase);
        else if (!phrase.empty()) add(std::nullopt, std::nullopt, join(phrase, ""), "");
        skip_rest();
    }

    void angle(const std::vector<const Token*>& phrase) {
        ++i_;
        std::optional<std::string> adl;
        if (at("@")) {  // obsolete route "@a,@b:"
            std::string route;
            while (i_ < t_.size() && !at(":") && !at(">")) route += t_[i_++].text;
            if (at(":")) ++i_;
            adl = route;
        }
        std::string local = join(words(), "");
        std::string host;
        if (at("@")) {
            ++i_;
            host = join(words(), "");
        }
        while (i_ < t_.size() && !at(">")) ++i_;
        if (at(">")) ++i_;
        words();  // a comment after the address
        add(name_of(phrase), std::move(adl), std::move(local), std::move(host));
    }

    void spec(const std::vector<const Token*>& local) {
        ++i_;
        std::string host = join(words(), "");
        add(std::nullopt, std::nullopt, join(local, ""), std::move(host));
    }

    // Up to the next address: "," goes, ";" ends a group.
    void skip_rest() {
        while (i_ < t_.size() && !at(",") && !at(";")) ++i_;
        if (at(";")) {
            if (in_group_) out_.push_back({});
            in_group_ = false;
        }
        if (i_ < t_.size()) ++i_;
    }

    std::vector<Token> t_;
    size_t i_ = 0;
    bool in_group_ = false;
    std::optional<std::string> comment_;
    std::vector<ImapAddress> out_;
};

void append_addresses(std::string& out, const std::vector<ImapAddress>& list, bool utf8) {
    if (list.empty()) {
        out += "NIL";
        return;
    }
    out += '(';
    for (const auto& a : list) {
        out += '(';
        append_imap_nstring(out, a.name, utf8);
        out += ' ';
        append_imap_nstring(out, a.adl, utf8);
        out += ' ';
        append_imap_nstring(out, a.mailbox, utf8);
        out += ' ';
        append_imap_nstring(out, a.host, utf8);
        out += ')';
    }
    out += ')';
}

std::vector<ImapAddress> addresses(const MimeField& f) {
    return f ? parse_address_list(*f) : std::vector<ImapAddress>{};
}

void append_params(std::string& out, const std::vector<MimeParam>& params, bool utf8) {
    if (params.empty()) {
        out += "NIL";
        return;
    }
    out += '(';
    for (size_t i = 0; i < params.size(); ++i) {
        if (i) out += ' ';
        append_imap_string(out, params[i].extended ? params[i].name + "*" : params[i].name, utf8);
        out += ' ';
        append_imap_string(out, params[i].value, utf8);
    }
    out += ')';
}

// body-ext-1part / body-ext-mpart after the first field: disposition, language, location.
void append_extension_tail(std::string& out, const MimePart& p, bool utf8) {
    out += ' ';
    if (p.disposition) {
        out += '(';
        append_imap_string(out, *p.disposition, utf8);
        out += ' ';
        append_params(out, p.disposition_params, utf8);
        out += ')';
    } else {
        out += "NIL";
    }
    out += ' ';
    if (p.languages.empty()) {
        out += "NIL";
    } else {
        out += '(';
        for (size_t i = 0; i < p.languages.size(); ++i) {
            if (i) out += ' ';
            append_imap_string(out, p.languages[i], utf8);
        }
        out += ')';
    }
    out += ' ';
    append_imap_nstring(out, p.location, utf8);
}

void append_part(std::string& out, const MimePart& p, bool ext, bool utf8);

void append_multipart(std::string& out, const MimePart& p, bool ext, bool utf8) {
    if (p.children.empty()) {
        out += kEmptyBody;
        out += ext ? " NIL NIL NIL NIL)" : ")";
    }
    for (const auto& child : p.children) append_part(out, child, ext, utf8);
    out += ' ';
    append_imap_string(out, p.subtype, utf8);
    if (!ext) return;
    out += ' ';
    append_params(out, p.params, utf8);
    append_extension_tail(out, p, utf8);
}

void append_single(std::string& out, const MimePart& p, bool ext, bool utf8) {
    append_imap_string(out, p.type, utf8);
    out += ' ';
    append_imap_string(out, p.subtype, utf8);
    out += ' ';
    if (p.params.empty() && p.type == "text") out += "(\"charset\" \"us-ascii\")";
    else append_params(out, p.params, utf8);
    out += ' ';
    append_imap_nstring(out, p.content_id, utf8);
    out += ' ';
    append_imap_nstring(out, p.description, utf8);
    out += ' ';
    append_imap_string(out, p.transfer_encoding(), utf8);
    out += ' ' + std::to_string(p.body.crlf_size);
    if (p.is_message()) {
        out += ' ';
        if (p.children.empty()) {
            out += imap_envelope(MimeEnvelope{}, utf8);
            out += ' ';
            out += kEmptyBody;
            out += ext ? " NIL NIL NIL NIL)" : ")";
        } else {
            out += imap_envelope(p.children.front(), utf8);
            out += ' ';
            append_part(out, p.children.front(), ext, utf8);
        }
    }
    if (p.is_message() || p.type == "text") out += ' ' + std::to_string(p.body.lines);
    if (!ext) return;
    out += ' ';
    append_imap_nstring(out, p.md5, utf8);
    append_extension_tail(out, p, utf8);
}

void append_part(std::string& out, const MimePart& p, bool ext, bool utf8) {
    out += '(';
    if (p.is_multipart()) append_multipart(out, p, ext, utf8);
    else append_single(out, p, ext, utf8);
    out += ')';
}

}  // namespace

void append_imap_string(std::string& out, std::string_view s, bool utf8_quoted) {
    std::string clean;
    bool eight_bit = false;
    for (char c : s) {
        if (c == '\r' || c == '\n' || c == '\0') continue;
        eight_bit = eight_bit || static_cast<unsigned char>(c) >= 0x80;
        clean += c;
    }
    if (eight_bit && !utf8_quoted) {
        out += '{' + std::to_string(clean.size()) + "}\r\n";
        out += clean;
        return;
    }
    out += '"';
    for (char c : clean) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += '"';
}

void append_imap_nstring(std::string& out, const std::optional<std::string>& s, bool utf8_quoted) {
    if (s) append_imap_string(out, *s, utf8_quoted);
    else out += "NIL";
}

std::vector<ImapAddress> parse_address_list(std::string_view value) { return AddressParser(value).run(); }

std::string imap_envelope(const MimeEnvelope& e, bool utf8) {
    std::string out = "(";
    append_imap_nstring(out, e.date, utf8);
    out += ' ';
    append_imap_nstring(out, e.subject, utf8);
    auto from = addresses(e.from);
    auto sender = addresses(e.sender), reply_to = addresses(e.reply_to);
    for (const auto* list : {&from, sender.empty() ? &from : &sender, reply_to.empty() ? &from : &reply_to}) {
        out += ' ';
        append_addresses(out, *list, utf8);
    }
    for (const MimeField* f : {&e.to, &e.cc, &e.bcc}) {
        out += ' ';
        append_addresses(out, addresses(*f), utf8);
    }
    out += ' ';
    append_imap_nstring(out, e.in_reply_to, utf8);
    out += ' ';
    append_imap_nstring(out, e.message_id, utf8);
    out += ')';
    return out;
}

std::string imap_envelope(const MimePart& message, bool utf8) {
    return imap_envelope(message.envelope ? *message.envelope : MimeEnvelope{}, utf8);
}

std::string imap_bodystructure(const MimePart& message, bool utf8) {
    std::string out;
    append_part(out, message, true, utf8);
    return out;
}

std::string imap_body(const MimePart& message, bool utf8) {
    std::string out;
    append_part(out, message, false, utf8);
    return out;
}

}  // namespace ferry::mail
