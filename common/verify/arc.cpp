// ARC chain verification (RFC 8617 5.2): structure first, then the newest AMS and every AS, newest first.
#include "common/verify/arc.hpp"

#include <algorithm>
#include <cctype>

namespace ferry::verify::arc {

namespace {

using dkim::Algorithm;

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// An instance number: 1 to 50, digits only.
int instance_number(std::string_view text) {
    if (text.empty() || text.size() > 2) return 0;
    int n = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return 0;
        n = n * 10 + (c - '0');
    }
    return n >= 1 && n <= kMaxInstances ? n : 0;
}

const std::string* tag(const std::vector<dkim::Tag>& tags, const char* name) {
    for (const auto& t : tags)
        if (t.first == name) return &t.second;
    return nullptr;
}

bool fail_why(std::string* why, const char* text) {
    if (why) *why = text;
    return false;
}

std::string value_of(const dkim::HeaderField& f) { return f.raw.substr(f.raw.find(':') + 1); }

std::string key_name(const std::string& selector, const std::string& domain) {
    return selector + "._domainkey." + domain;
}

}  // namespace

const char* status_name(Status s) {
    switch (s) {
        case Status::none: return "none";
        case Status::pass: return "pass";
        case Status::fail: return "fail";
    }
    return "fail";
}

std::optional<Seal> parse_seal(std::string_view value, std::string* why) {
    auto tags = dkim::parse_tag_list(value, why);
    if (!tags) return std::nullopt;
    Seal s;
    const std::string *i = tag(*tags, "i"), *a = tag(*tags, "a"), *cv = tag(*tags, "cv"), *d = tag(*tags, "d"),
                      *sel = tag(*tags, "s"), *b = tag(*tags, "b");
    if (!i || !a || !cv || !d || !sel || !b) return fail_why(why, "ARC-Seal lacks a required tag"), std::nullopt;
    if (tag(*tags, "h")) return fail_why(why, "ARC-Seal has h="), std::nullopt;
    if (!(s.instance = instance_number(*i))) return fail_why(why, "ARC-Seal i= out of range"), std::nullopt;
    if (*a == "rsa-sha256") s.algorithm = Algorithm::rsa_sha256;
    else if (*a == "ed25519-sha256") s.algorithm = Algorithm::ed25519_sha256;
    else return fail_why(why, "ARC-Seal a= unknown"), std::nullopt;
    s.cv = lower(*cv);
    if (s.cv != "none" && s.cv != "pass" && s.cv != "fail") return fail_why(why, "ARC-Seal cv= unknown"), std::nullopt;
    s.domain = lower(*d);
    s.selector = *sel;
    auto sig = dkim::decode_base64(*b);
    if (s.domain.empty() || s.selector.empty() || !sig || sig->empty())
        return fail_why(why, "ARC-Seal d=, s= or b= malformed"), std::nullopt;
    s.signature = std::move(*sig);
    return s;
}

std::optional<dkim::Signature> parse_message_signature(std::string_view value, int* instance, std::string* why) {
    auto tags = dkim::parse_tag_list(value, why);
    if (!tags) return std::nullopt;
    const std::string* i = tag(*tags, "i");
    if (!i || !(*instance = instance_number(*i))) return fail_why(why, "ARC-Message-Signature i= missing or out of range"), std::nullopt;
    if (tag(*tags, "v")) return fail_why(why, "ARC-Message-Signature has v="), std::nullopt;
    // The DKIM parser reads the rest: the same tags, with v=1 and without the instance i=.
    std::string dkim_value = "v=1;";
    for (const auto& t : *tags)
        if (t.first != "i") dkim_value += " " + t.first + "=" + t.second + ";";
    auto sig = dkim::parse_signature(dkim_value, why);
    if (!sig) return std::nullopt;
    if (std::find(sig->headers.begin(), sig->headers.end(), "arc-seal") != sig->headers.end())
        return fail_why(why, "ARC-Message-Signature signs ARC-Seal"), std::nullopt;
    return sig;
}

int aar_instance(std::string_view value) {
    size_t at = value.find_first_not_of(" \t\r\n");
    if (at == std::string_view::npos || value.substr(at, 2) != "i=") return 0;
    value.remove_prefix(at + 2);
    size_t end = value.find(';');
    if (end == std::string_view::npos) return 0;
    std::string_view n = value.substr(0, end);
    while (!n.empty() && (n.back() == ' ' || n.back() == '\t')) n.remove_suffix(1);
    return instance_number(n);
}

std::string seal_hash_input(const std::vector<std::string>& fields) {
    std::string data;
    for (size_t k = 0; k + 1 < fields.size(); ++k) data += dkim::canon_header(fields[k], dkim::Canon::relaxed);
    if (fields.empty()) return data;
    std::string self = dkim::canon_header(dkim::without_b_value(fields.back()), dkim::Canon::relaxed);
    self.resize(self.size() - 2);  // without its CRLF
    return data + self;
}

void Verifier::feed(std::string_view chunk) {
    if (in_body_) {
        if (body_) body_->feed(chunk);
        return;
    }
    std::string body;
    if (!dkim::take_header(header_, chunk, body)) return;
    start_body();
    if (!body.empty()) feed(body);
}

void Verifier::fail(std::string reason) {
    ChainResult r;
    r.status = Status::fail;
    r.instances = static_cast<int>(sets_.size());
    if (!sets_.empty() && sets_.back().seal) r.domain = sets_.back().seal->domain;
    r.reason = std::move(reason);
    decided_ = std::move(r);
    body_.reset();
}

void Verifier::start_body() {
    in_body_ = true;
    fields_ = dkim::split_header(header_);
    header_.clear();
    header_.shrink_to_fit();
    if (!collect()) return;
    const auto& newest = sets_.back();
    body_ = std::make_unique<dkim::BodyHash>(newest.sig->body_canon, std::nullopt);
}

// Groups the ARC fields into sets and checks the structure (5.2 steps 1 to 3); false once decided.
bool Verifier::collect() {
    int highest = 0;
    std::vector<Set> sets(kMaxInstances);
    for (const auto& f : fields_) {
        bool aar = f.name == "arc-authentication-results", ams = f.name == "arc-message-signature", as = f.name == "arc-seal";
        if (!aar && !ams && !as) continue;
        std::string why;
        int i = 0;
        if (aar) {
            if (!(i = aar_instance(value_of(f)))) return fail("ARC-Authentication-Results without a valid i="), false;
        } else if (ams) {
            auto sig = parse_message_signature(value_of(f), &i, &why);
            if (!sig) return fail(why), false;
            sets[i - 1].sig = std::move(sig);
        } else {
            auto seal = parse_seal(value_of(f), &why);
            if (!seal) return fail(why), false;
            i = seal->instance;
            sets[i - 1].seal = std::move(seal);
        }
        auto& slot = aar ? sets[i - 1].aar : ams ? sets[i - 1].ams : sets[i - 1].as;
        if (slot) return fail("instance " + std::to_string(i) + " has a repeated ARC field"), false;
        slot = &f;
        highest = std::max(highest, i);
    }
    if (highest == 0) {
        decided_ = ChainResult{};
        return false;
    }
    sets.resize(highest);
    sets_ = std::move(sets);
    for (int i = 1; i <= highest; ++i) {
        const Set& s = sets_[i - 1];
        if (!s.aar || !s.ams || !s.as) return fail("instance " + std::to_string(i) + " is incomplete"), false;
    }
    if (sets_.back().seal->cv == "fail") return fail("the newest seal says cv=fail"), false;
    for (int i = 1; i <= highest; ++i) {
        const std::string& cv = sets_[i - 1].seal->cv;
        if (cv != (i == 1 ? "none" : "pass")) return fail("instance " + std::to_string(i) + " has cv=" + cv), false;
    }
    if (sets_.back().sig->expiry && *sets_.back().sig->expiry < now_) return fail("ARC-Message-Signature expired"), false;
    return true;
}

void Verifier::finish() {
    if (!in_body_) start_body();
    if (!body_) return;
    std::string digest = body_->finish();
    body_.reset();
    if (digest != sets_.back().sig->body_hash) fail("body hash mismatch");
}

std::vector<std::string> Verifier::key_names() const {
    std::vector<std::string> names;
    if (decided_) return names;
    auto add = [&](std::string n) {
        if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(std::move(n));
    };
    add(key_name(sets_.back().sig->selector, sets_.back().sig->domain));
    for (const auto& s : sets_) add(key_name(s.seal->selector, s.seal->domain));
    return names;
}

void Verifier::key_answer(const std::string& name, const dkim::KeyAnswer& a) { keys_[name] = a; }

namespace {

// The public key for `name` out of the answers, or "" with `why`.
std::string public_key(const std::map<std::string, dkim::KeyAnswer>& keys, const std::string& name, Algorithm alg,
                       std::string* why) {
    auto it = keys.find(name);
    if (it == keys.end() || it->second.status == dkim::KeyAnswer::Status::error) return *why = "key lookup failed", "";
    if (it->second.status != dkim::KeyAnswer::Status::ok) return *why = "no key record", "";
    for (const auto& r : it->second.records) {
        auto k = dkim::parse_key_record(r, why);
        if (!k) continue;
        if (k->key.empty()) return *why = "key revoked", "";
        if (k->type != (alg == Algorithm::ed25519_sha256 ? "ed25519" : "rsa")) return *why = "key type does not match a=", "";
        return k->key;
    }
    return *why = "no usable key record", "";
}

}  // namespace

ChainResult Verifier::result() const {
    if (decided_) return *decided_;
    ChainResult r;
    r.instances = static_cast<int>(sets_.size());
    r.domain = sets_.back().seal->domain;
    r.status = Status::fail;
    const Set& newest = sets_.back();
    std::string why;
    std::string key = public_key(keys_, key_name(newest.sig->selector, newest.sig->domain), newest.sig->algorithm, &why);
    if (key.empty()) return r.reason = "ARC-Message-Signature: " + why, r;
    std::string data = dkim::header_hash_input(fields_, newest.sig->headers, newest.ams->raw, newest.sig->header_canon);
    if (!dkim::verify_signature(newest.sig->algorithm, key, data, newest.sig->signature, &why))
        return r.reason = "ARC-Message-Signature " + std::to_string(r.instances) + ": " + why, r;
    for (int i = r.instances; i >= 1; --i) {
        const Seal& seal = *sets_[i - 1].seal;
        key = public_key(keys_, key_name(seal.selector, seal.domain), seal.algorithm, &why);
        if (key.empty()) return r.reason = "ARC-Seal " + std::to_string(i) + ": " + why, r;
        std::vector<std::string> signed_fields;
        for (int j = 1; j <= i; ++j) {
            const Set& s = sets_[j - 1];
            signed_fields.insert(signed_fields.end(), {s.aar->raw, s.ams->raw, s.as->raw});
        }
        if (!dkim::verify_signature(seal.algorithm, key, seal_hash_input(signed_fields), seal.signature, &why))
            return r.reason = "ARC-Seal " + std::to_string(i) + ": " + why, r;
    }
    r.status = Status::pass;
    return r;
}

std::string result_text(const ChainResult& r) {
    std::string out = std::string("arc=") + status_name(r.status);
    if (r.status == Status::none) return out;
    std::string comment = "i=" + std::to_string(r.instances);
    if (!r.domain.empty()) comment += " d=" + r.domain;
    if (!r.reason.empty()) comment += ": " + r.reason;
    return out + " (" + comment + ")";
}

}  // namespace ferry::verify::arc
