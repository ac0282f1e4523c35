// DKIM (RFC 6376) verification and signing of whole messages, streamed; keys come from the caller (pure, no DNS).
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/verify/dkim_canon.hpp"
#include "common/verify/dkim_key.hpp"
#include "common/verify/dkim_sig.hpp"

namespace ferry::verify::dkim {

// RFC 8601 2.7.1 results; `policy` is not produced.
enum class Status { none, pass, fail, neutral, temperror, permerror };
const char* status_name(Status s);

// Signatures beyond this many in one message are not evaluated.
inline constexpr size_t kMaxSignatures = 8;

struct SignatureResult {
    Status status = Status::permerror;
    std::string domain, selector, identity;
    std::string b_prefix;  // the first 8 characters of b= (RFC 6008 header.b)
    std::string reason;    // for the log and the header comment
    bool testing = false;  // the key record said t=y
};

// What a key lookup answered: TXT strings of <selector>._domainkey.<domain>.
struct KeyAnswer {
    enum class Status { ok, nxdomain, nodata, error } status = Status::error;
    std::vector<std::string> records;
};

// Verification: feed() the message (LF or CRLF) in chunks, finish(), then answer each key the
// signatures need; result() holds every signature's outcome, in the order of the header.
class Verifier {
public:
    explicit Verifier(std::time_t now) : now_(now) {}
    void feed(std::string_view chunk);
    void finish();
    size_t count() const { return sigs_.size(); }
    // The TXT name signature `i` needs ("sel._domainkey.example.org"), "" when it is decided already.
    std::string key_name(size_t i) const;
    void key_answer(size_t i, const KeyAnswer& a);
    const SignatureResult& result(size_t i) const { return sigs_[i].result; }
    // The message's header fields, once the header ended (DMARC reads From: from them).
    const std::vector<HeaderField>& header() const { return fields_; }

private:
    struct Sig {
        SignatureResult result;
        std::optional<Signature> parsed;
        std::string raw;
        std::unique_ptr<BodyHash> body;
        std::string body_digest;
        bool decided = false;
    };
    void start_body();
    void decide(Sig& s, Status st, std::string reason);
    std::time_t now_;
    std::string header_;  // until the empty line
    bool in_body_ = false, overflow_ = false;
    std::vector<HeaderField> fields_;
    std::vector<Sig> sigs_;
};

struct SignOptions {
    std::string domain;
    std::string selector;
    std::vector<std::string> headers;  // names to sign, each instance present (From is always added)
    Canon header_canon = Canon::relaxed;
    Canon body_canon = Canon::relaxed;
    std::time_t now = 0;
};

// Moves what of `chunk` belongs to the header block into `header`; true once the empty line ending
// it was seen, with `body` then holding what followed it. A block over the limit ends there.
bool take_header(std::string& header, std::string_view chunk, std::string& body);

// The default list of fields to sign (RFC 6376 5.4.1).
std::vector<std::string> default_signed_headers();

// Signing: feed() the message, then finish() gives the "DKIM-Signature: ...\n" field to put on top
// (LF line ends, folded under 80 columns).
class Signer {
public:
    Signer(const PrivateKey& key, SignOptions o);
    void feed(std::string_view chunk);
    Result<std::string> finish();

private:
    const PrivateKey& key_;
    SignOptions o_;
    std::string header_;
    bool in_body_ = false;
    BodyHash body_;
};

// The h= list for `headers` (lower case): each name as often as the message has it, From at least once.
std::vector<std::string> names_to_sign(const std::vector<HeaderField>& fields, std::vector<std::string> headers);

// Field folding as the signer writes: fold_append adds `piece` after a space (or on a new line when it
// would pass 78 columns); fold_base64 adds a b= value in pieces up to column 76. `column` follows the line.
void fold_append(std::string& out, size_t& column, std::string_view piece, bool space);
void fold_base64(std::string& out, size_t& column, std::string_view b);

// One result as an Authentication-Results method: "dkim=pass header.d=... header.s=... header.b=...".
std::string result_text(const SignatureResult& r);

}  // namespace ferry::verify::dkim
