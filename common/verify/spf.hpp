// SPF (RFC 7208): record parser, macro expander and check_host() as a pure state machine over DNS answers.
#pragma once

#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ferry::verify::spf {

// RFC 7208 2.6.
enum class Result { none, neutral, pass, fail, softfail, temperror, permerror };
const char* result_name(Result r);

// Limits (RFC 7208 4.6.4): DNS-querying terms per check, void lookups, names per mx or ptr term.
inline constexpr int kMaxDnsTerms = 10;
inline constexpr int kMaxVoidLookups = 2;
inline constexpr size_t kMaxNames = 10;
// Parser limits: a record longer than this, or with more terms, is a permerror.
inline constexpr size_t kMaxRecordLength = 4096;
inline constexpr size_t kMaxTerms = 128;
// Macro expansion never yields more than this (an explanation or a name before truncation).
inline constexpr size_t kMaxExpansion = 1024;

// One parsed term of a record.
struct Term {
    enum Kind { all, include, a, mx, ptr, ip4, ip6, exists, redirect, exp, unknown_modifier };
    Kind kind = all;
    char qualifier = '+';     // + - ~ ?
    std::string domain;       // domain-spec as written (macros unexpanded); "" when absent
    unsigned char addr[16]{}; // ip4 (first 4 bytes) or ip6
    int cidr4 = 32;           // a, mx, ip4
    int cidr6 = 128;          // a, mx, ip6
};

struct Record {
    std::vector<Term> terms;      // mechanisms and unknown modifiers in order
    std::optional<Term> redirect; // at most one
    std::optional<Term> exp;      // at most one
    bool has_all = false;
};

// True for a TXT string that is an SPF version 1 record ("v=spf1" alone or followed by a space).
bool is_spf_record(std::string_view txt);

// Parses a whole record ("v=spf1 ..."); nullopt is a syntax error (permerror), `why` says which term.
std::optional<Record> parse_record(std::string_view txt, std::string* why = nullptr);

// The client and identities a check is about; `ip` is numeric (IPv4-mapped IPv6 counts as IPv4).
struct Request {
    std::string ip;
    std::string sender;    // MAIL FROM address; "" for the null reverse-path (then postmaster@helo)
    std::string helo;      // HELO/EHLO argument
    std::string receiver;  // our host name (%{r})
    std::time_t now = 0;   // %{t}
};

// What the check asks the resolver; `name` is lower case without the trailing dot.
enum class QueryType { txt, a, aaaa, mx, ptr };
struct Query {
    QueryType type = QueryType::txt;
    std::string name;
    bool operator<(const Query& o) const { return type != o.type ? type < o.type : name < o.name; }
    bool operator==(const Query& o) const { return type == o.type && name == o.name; }
};
const char* query_type_name(QueryType t);

// A DNS answer: `error` is every temporary failure (timeout, SERVFAIL, ...). `records` are the
// TXT strings (each record's character-strings joined), numeric addresses, MX exchanges ("" for
// a null MX) or PTR names.
enum class DnsStatus { ok, nxdomain, nodata, error };
struct Answer {
    DnsStatus status = DnsStatus::error;
    std::vector<std::string> records;
};

struct Verdict {
    Result result = Result::none;
    std::string identity;     // "mailfrom" or "helo"
    std::string sender;       // the <sender> checked: the MAIL FROM address or postmaster@helo
    std::string domain;       // the domain whose record was checked
    std::string explanation;  // with fail: the domain's exp= text, or a default
    std::string reason;       // for the log and a header comment: the matching term or the error
};

// A verdict of `none` with the identity, sender and domain the request is checked for.
Verdict identities(const Request& req);

// check_host() for a request (RFC 7208 4). It is rerun from the start with every answer it got so
// far, so it keeps no state beyond the answers: step() gives the verdict or the next query, which
// the caller answers with answer() before calling step() again. Every query is asked once.
class Check {
public:
    explicit Check(Request req);
    std::variant<Verdict, Query> step();
    void answer(const Query& q, Answer a);
    size_t queries() const { return answers_.size(); }

private:
    Request req_;
    std::map<Query, Answer> answers_;
};

// Macro expansion (RFC 7208 7) of a macro-string with the given values; nullopt on a syntax
// error. `explanation`: c, r and t are allowed (exp= text). `p` is the validated host name or "unknown".
struct MacroValues {
    std::string sender, local, domain_of_sender, domain, helo, receiver, p;
    std::string ip;       // %{i}: dotted IPv4 or dot-separated IPv6 nibbles
    std::string ip_text;  // %{c}: the address as usually written
    bool ipv6 = false;
    std::time_t now = 0;
};
std::optional<std::string> expand(std::string_view spec, const MacroValues& v, bool explanation);

// Parses a macro-string's syntax only (for the record parser and the fuzzer).
bool valid_macro_string(std::string_view spec, bool explanation);

}  // namespace ferry::verify::spf
