// DKIM verification and signing of whole messages (RFC 6376 5 and 6), streamed over the body.
#include "common/verify/dkim.hpp"

#include <algorithm>

namespace ferry::verify::dkim {

bool take_header(std::string& header, std::string_view chunk, std::string& body) {
    size_t from = header.size() >= 2 ? header.size() - 2 : 0;
    header.append(chunk);
    for (size_t i = header.find('\n', from); i != std::string::npos; i = header.find('\n', i + 1)) {
        size_t line_start = i == 0 || header[i - 1] == '\n' ? i : (header[i - 1] == '\r' && (i == 1 || header[i - 2] == '\n') ? i - 1 : std::string::npos);
        if (line_start == std::string::npos) continue;
        body = header.substr(i + 1);
        header.resize(line_start);
        return true;
    }
    if (header.size() <= kMaxHeaderBytes) return false;
    body.clear();
    return true;
}

namespace {

bool domain_matches(const std::string& identity, const std::string& domain) {
    std::string idom = identity.substr(identity.rfind('@') + 1);
    std::transform(idom.begin(), idom.end(), idom.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return idom == domain;
}

// The chosen key type matches the signature's algorithm (k= defaults to rsa).
bool key_fits(const KeyRecord& k, Algorithm a) {
    return a == Algorithm::ed25519_sha256 ? k.type == "ed25519" : k.type == "rsa";
}

}  // namespace

const char* status_name(Status s) {
    switch (s) {
        case Status::none: return "none";
        case Status::pass: return "pass";
        case Status::fail: return "fail";
        case Status::neutral: return "neutral";
        case Status::temperror: return "temperror";
        case Status::permerror: return "permerror";
    }
    return "permerror";
}

void Verifier::feed(std::string_view chunk) {
    if (in_body_) {
        for (auto& s : sigs_)
            if (s.body) s.body->feed(chunk);
        return;
    }
    std::string body;
    if (!take_header(header_, chunk, body)) return;
    start_body();
    if (!body.empty()) feed(body);
}

void Verifier::start_body() {
    in_body_ = true;
    fields_ = split_header(header_);
    header_.clear();
    header_.shrink_to_fit();
    for (const auto& f : fields_) {
        if (f.name != "dkim-signature") continue;
        if (sigs_.size() == kMaxSignatures) break;
        Sig s;
        s.raw = f.raw;
        std::string why;
        s.parsed = parse_signature(std::string_view(f.raw).substr(f.raw.find(':') + 1), &why);
        if (!s.parsed) {
            decide(s, Status::permerror, why);
        } else {
            s.result.domain = s.parsed->domain;
            s.result.selector = s.parsed->selector;
            s.result.identity = s.parsed->identity;
            s.result.b_prefix = s.parsed->b_text.substr(0, 8);
            if (s.parsed->expiry && *s.parsed->expiry < now_) decide(s, Status::fail, "signature expired");
            else s.body = std::make_unique<BodyHash>(s.parsed->body_canon, s.parsed->length);
        }
        sigs_.push_back(std::move(s));
    }
}

void Verifier::decide(Sig& s, Status st, std::string reason) {
    s.decided = true;
    s.result.status = st;
    s.result.reason = std::move(reason);
    s.body.reset();
}

void Verifier::finish() {
    if (!in_body_) start_body();
    for (auto& s : sigs_) {
        if (!s.body) continue;
        std::string digest = s.body->finish();
        // An l= longer than the body cannot have been what the signer hashed.
        if (s.parsed->length && s.body->length() < *s.parsed->length) decide(s, Status::permerror, "l= exceeds the body");
        else if (digest != s.parsed->body_hash) decide(s, Status::fail, "body hash mismatch");
        s.body.reset();
    }
}

std::string Verifier::key_name(size_t i) const {
    const Sig& s = sigs_[i];
    return s.decided ? "" : s.parsed->selector + "._domainkey." + s.parsed->domain;
}

void Verifier::key_answer(size_t i, const KeyAnswer& a) {
    Sig& s = sigs_[i];
    if (s.decided) return;
    if (a.status == KeyAnswer::Status::error) return decide(s, Status::temperror, "key lookup failed");
    if (a.status != KeyAnswer::Status::ok || a.records.empty()) return decide(s, Status::permerror, "no key record");
    std::optional<KeyRecord> key;
    std::string why = "bad key record";
    for (const auto& r : a.records)
        if ((key = parse_key_record(r, &why))) break;
    if (!key) return decide(s, Status::permerror, why);
    s.result.testing = key->testing;
    if (key->key.empty()) return decide(s, Status::permerror, "key revoked");
    if (!key_fits(*key, s.parsed->algorithm)) return decide(s, Status::permerror, "key type does not match a=");
    if (!key->hashes.empty() && std::find(key->hashes.begin(), key->hashes.end(), "sha256") == key->hashes.end())
        return decide(s, Status::permerror, "key does not allow sha256");
    if (key->strict && !domain_matches(s.parsed->identity, s.parsed->domain))
        return decide(s, Status::permerror, "key is for d= only (t=s), i= is a subdomain");
    std::string data = header_hash_input(fields_, s.parsed->headers, s.raw, s.parsed->header_canon);
    if (!verify_signature(s.parsed->algorithm, key->key, data, s.parsed->signature, &why)) return decide(s, Status::fail, why);
    decide(s, Status::pass, "");
}

std::vector<std::string> default_signed_headers() {
    return {"from", "reply-to", "subject", "date", "to", "cc", "resent-date", "resent-from", "resent-to", "resent-cc",
            "in-reply-to", "references", "list-id", "list-help", "list-unsubscribe", "list-subscribe", "list-post",
            "list-owner", "list-archive", "message-id", "mime-version", "content-type", "content-transfer-encoding"};
}

Signer::Signer(const PrivateKey& key, SignOptions o) : key_(key), o_(std::move(o)), body_(o_.body_canon, std::nullopt) {}

void Signer::feed(std::string_view chunk) {
    if (in_body_) return body_.feed(chunk);
    std::string body;
    if (!take_header(header_, chunk, body)) return;
    in_body_ = true;
    body_.feed(body);
}

std::vector<std::string> names_to_sign(const std::vector<HeaderField>& fields, std::vector<std::string> headers) {
    std::vector<std::string> names;
    if (std::find(headers.begin(), headers.end(), "from") == headers.end()) headers.insert(headers.begin(), "from");
    for (const auto& h : headers) {
        size_t n = std::count_if(fields.begin(), fields.end(), [&](const HeaderField& f) { return f.name == h; });
        names.insert(names.end(), std::max<size_t>(n, h == "from" ? 1 : 0), h);
    }
    return names;
}

void fold_append(std::string& out, size_t& column, std::string_view piece, bool space) {
    if (column + piece.size() + 1 > 78 && column > 1) {
        out += "\n\t";
        column = 1;
    } else if (space) {
        out += ' ';
        ++column;
    }
    out.append(piece);
    column += piece.size();
}

void fold_base64(std::string& out, size_t& column, std::string_view b) {
    for (size_t at = 0; at < b.size();) {
        size_t room = column < 76 ? 76 - column : 0;
        if (room == 0) {
            out += "\n\t";
            column = 1;
            continue;
        }
        out += b.substr(at, room);
        column += std::min(room, b.size() - at);
        at += room;
    }
}

namespace {

std::string crlf(std::string_view lf) {
    std::string out;
    for (char c : lf) {
        if (c == '\n') out += '\r';
        out += c;
    }
    return out;
}

const char* canon_name(Canon c) { return c == Canon::simple ? "simple" : "relaxed"; }

}  // namespace

Result<std::string> Signer::finish() {
    if (!in_body_) in_body_ = true;
    std::vector<HeaderField> fields = split_header(header_);
    std::vector<std::string> names = names_to_sign(fields, o_.headers);
    std::string value;
    size_t column = 15;  // "DKIM-Signature:"
    std::string tags[] = {"v=1;", std::string("a=") + algorithm_name(key_.algorithm()) + ";",
                          std::string("c=") + canon_name(o_.header_canon) + "/" + canon_name(o_.body_canon) + ";",
                          "d=" + o_.domain + ";", "s=" + o_.selector + ";", "t=" + std::to_string(o_.now) + ";"};
    for (const auto& t : tags) fold_append(value, column, t, true);
    for (size_t i = 0; i < names.size(); ++i)
        fold_append(value, column, (i == 0 ? "h=" : "") + names[i] + (i + 1 == names.size() ? ";" : ":"), i == 0);
    fold_append(value, column, "bh=" + encode_base64(body_.finish()) + ";", true);
    fold_append(value, column, "b=", true);
    std::string data = header_hash_input(fields, names, crlf("DKIM-Signature:" + value), o_.header_canon);
    auto sig = key_.sign(data);
    if (!sig) return sig.error();
    fold_base64(value, column, encode_base64(*sig));
    return "DKIM-Signature:" + value + "\n";
}

std::string result_text(const SignatureResult& r) {
    std::string out = std::string("dkim=") + status_name(r.status);
    if (!r.reason.empty()) out += " (" + r.reason + ")";
    if (r.testing) out += " (test key)";
    if (!r.domain.empty()) out += " header.d=" + r.domain;
    if (!r.selector.empty()) out += " header.s=" + r.selector;
    if (!r.b_prefix.empty()) out += " header.b=" + r.b_prefix;
    return out;
}

}  // namespace ferry::verify::dkim
