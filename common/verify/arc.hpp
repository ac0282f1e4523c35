// ARC (RFC 8617) chain verification: the ARC sets parsed and checked, the newest AMS and every AS verified with the DKIM pieces (pure, no DNS).
#pragma once

#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/verify/dkim.hpp"

namespace ferry::verify::arc {

// RFC 8617 4.2.1: at most 50 ARC sets in a chain.
inline constexpr int kMaxInstances = 50;

// The chain validation status (RFC 8617 4.4), as the `arc` method reports it (RFC 8601 registry).
enum class Status { none, pass, fail };
const char* status_name(Status s);

// An ARC-Seal (4.1.3): i=, a=, cv=, d=, s=, b= (t= is not checked).
struct Seal {
    int instance = 0;
    dkim::Algorithm algorithm = dkim::Algorithm::rsa_sha256;
    std::string cv;                // "none", "pass" or "fail"
    std::string domain, selector;  // d= in lower case, s=
    std::string signature;         // b=, decoded
};

// Parses an ARC-Seal value (after the colon); nullopt with `why` for a missing or malformed tag, or h= present.
std::optional<Seal> parse_seal(std::string_view value, std::string* why = nullptr);

// Parses an ARC-Message-Signature value (4.1.2): a DKIM signature whose i= is the instance and that
// has no v=; nullopt with `why` as for DKIM, or when h= names ARC-Seal.
std::optional<dkim::Signature> parse_message_signature(std::string_view value, int* instance, std::string* why = nullptr);

// The i= that opens an ARC-Authentication-Results value (4.1.1); 0 when it is missing or out of range.
int aar_instance(std::string_view value);

// The data an ARC-Seal of instance `fields.size() / 3` signs (5.1.1): the sets' fields AAR, AMS, AS
// in increasing instance order, relaxed, the last AS with its b= emptied and without its CRLF.
// `fields` holds the raw fields in exactly that order.
std::string seal_hash_input(const std::vector<std::string>& fields);

struct ChainResult {
    Status status = Status::none;
    int instances = 0;     // the newest instance, 0 without ARC sets
    std::string domain;    // d= of the newest ARC-Seal
    std::string reason;    // why it failed, for the log and the header comment
};

// Verification: feed() the message in chunks, finish(), answer each key_names() entry, then result().
class Verifier {
public:
    explicit Verifier(std::time_t now) : now_(now) {}
    void feed(std::string_view chunk);
    void finish();
    // The TXT names ("sel._domainkey.example.org") the chain needs; empty when it is decided already.
    std::vector<std::string> key_names() const;
    void key_answer(const std::string& name, const dkim::KeyAnswer& a);
    // Keys not answered count as a failed lookup.
    ChainResult result() const;

private:
    struct Set {
        const dkim::HeaderField* aar = nullptr;
        const dkim::HeaderField* ams = nullptr;
        const dkim::HeaderField* as = nullptr;
        std::optional<dkim::Signature> sig;
        std::optional<Seal> seal;
    };
    void start_body();
    void fail(std::string reason);
    bool collect();
    std::time_t now_;
    std::string header_;
    bool in_body_ = false;
    std::vector<dkim::HeaderField> fields_;
    std::vector<Set> sets_;  // index 0 is instance 1
    std::unique_ptr<dkim::BodyHash> body_;
    std::optional<ChainResult> decided_;
    std::map<std::string, dkim::KeyAnswer> keys_;
};

// The Authentication-Results method: "arc=pass (i=2 d=example.org)".
std::string result_text(const ChainResult& r);

}  // namespace ferry::verify::arc
