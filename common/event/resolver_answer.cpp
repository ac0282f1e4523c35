// Pure functions over raw DNS answers: header checks, CNAME chains, MX and A/AAAA records.
#include "common/event/resolver_answer.hpp"

#include <arpa/inet.h>
#include <ares.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <set>
#include <vector>

#include "common/base/log.hpp"

namespace ferry::dns {

namespace {

constexpr int kTypeA = 1, kTypeCname = 5, kTypeSoa = 6, kTypePtr = 12, kTypeMx = 15, kTypeTxt = 16, kTypeAaaa = 28, kClassIn = 1;

struct Record {
    std::string owner;
    int type = 0;
    size_t rdata = 0;  // offset of the data in the packet (names in it may point anywhere)
    size_t rdlength = 0;
    uint32_t ttl = 0;
};

struct Packet {
    std::string error;  // set: the packet is unusable (a temporary failure)
    int rcode = 0;
    bool truncated = false;
    std::vector<Record> answers;
    uint32_t negative_ttl = 0;  // from the authority section's SOA (RFC 2308 5); 0 without one
};

// What the answer section says about qname after following its CNAME chain.
struct Chain {
    Status status = Status::temporary;
    std::string error;
    std::string follow;            // the chain ends at this name without its records: ask for it
    std::vector<const Record*> records;
    uint32_t ttl = 0;  // the smallest TTL of the records and CNAMEs used; the negative TTL for nxdomain/nodata
};

unsigned u16(std::string_view p, size_t off) {
    return static_cast<unsigned>(static_cast<unsigned char>(p[off])) << 8 | static_cast<unsigned char>(p[off + 1]);
}

uint32_t u32(std::string_view p, size_t off) {
    return static_cast<uint32_t>(u16(p, off)) << 16 | u16(p, off + 2);
}

// RFC 2181 8: a TTL with the top bit set is read as zero.
uint32_t ttl_value(uint32_t raw) { return raw & 0x80000000u ? 0 : raw; }

// Reads the (possibly compressed) name at `off` with c-ares' decoder; `off` moves past it.
bool read_name(std::string_view pkt, size_t& off, std::string& out) {
    if (off >= pkt.size()) return false;
    const auto* buf = reinterpret_cast<const unsigned char*>(pkt.data());
    char* s = nullptr;
    long used = 0;
    if (ares_expand_name(buf + off, buf, static_cast<int>(pkt.size()), &s, &used) != ARES_SUCCESS) return false;
    out = normalize_name(s);
    ares_free_string(s);
    off += static_cast<size_t>(used);
    return true;
}

// The question must be the one we asked: one entry, our name, our type, class IN.
std::string check_question(std::string_view pkt, size_t& off, const std::string& qname, int qtype) {
    if (u16(pkt, 4) != 1) return "answer with " + std::to_string(u16(pkt, 4)) + " questions";
    std::string name;
    if (!read_name(pkt, off, name) || off + 4 > pkt.size()) return "malformed question section";
    if (name != normalize_name(qname) || static_cast<int>(u16(pkt, off)) != qtype || u16(pkt, off + 2) != kClassIn)
        return "answer to another question (" + name + ")";
    off += 4;
    return {};
}

// One resource record at `off` (moved past it); type 0 for a record not of class IN.
bool read_record(std::string_view pkt, size_t& off, Record& r) {
    if (!read_name(pkt, off, r.owner) || off + 10 > pkt.size()) return false;
    r.type = u16(pkt, off + 2) == kClassIn ? static_cast<int>(u16(pkt, off)) : 0;
    r.ttl = ttl_value(u32(pkt, off + 4));
    r.rdlength = u16(pkt, off + 8);
    r.rdata = off + 10;
    off = r.rdata + r.rdlength;
    return off <= pkt.size();
}

// RFC 2308 5: a negative answer lives for the smaller of the SOA's TTL and its MINIMUM field.
uint32_t soa_negative_ttl(std::string_view pkt, const Record& soa) {
    size_t off = soa.rdata;
    std::string mname, rname;
    if (!read_name(pkt, off, mname) || !read_name(pkt, off, rname) || off + 20 != soa.rdata + soa.rdlength) return 0;
    return std::min(soa.ttl, ttl_value(u32(pkt, off + 16)));
}

// The answer section is read with c-ares' name decoder (ares_expand_name) but not with ares_parse_mx_reply:
// that one takes every MX record of the answer whatever its owner, also of names off the CNAME chain.
Packet read_packet(std::string_view pkt, const std::string& qname, int qtype) {
    Packet p;
    if (pkt.size() < 12 || pkt.size() > 65535) return Packet{"malformed answer (" + std::to_string(pkt.size()) + " bytes)"};
    unsigned flags = u16(pkt, 2);
    if (!(flags & 0x8000)) return Packet{"malformed answer (not a response)"};
    p.truncated = flags & 0x0200;
    p.rcode = static_cast<int>(flags & 0xf);
    size_t off = 12;
    if (auto e = check_question(pkt, off, qname, qtype); !e.empty()) return Packet{e};
    for (unsigned i = 0, n = u16(pkt, 6); i < n; ++i) {
        Record r;
        if (!read_record(pkt, off, r)) return Packet{"malformed answer section"};
        if (r.type != 0) p.answers.push_back(std::move(r));
    }
    // The authority section only for a negative answer's SOA; a malformed one means no negative TTL.
    for (unsigned i = 0, n = u16(pkt, 8); i < n; ++i) {
        Record r;
        if (!read_record(pkt, off, r)) break;
        if (r.type == kTypeSoa) {
            p.negative_ttl = soa_negative_ttl(pkt, r);
            break;
        }
    }
    return p;
}

std::string rcode_error(int rcode) {
    switch (rcode) {
        case 1: return "the server reports a format error";
        case 2: return "server failure (SERVFAIL)";
        case 4: return "the server does not implement the query";
        case 5: return "the server refused the query";
        default: return "the server answered with error code " + std::to_string(rcode);
    }
}

// Follows qname's CNAME chain through the answer section (RFC 1034 3.6.2, RFC 2181 10.1).
Chain walk(std::string_view pkt, const Packet& p, const std::string& qname, int qtype) {
    if (!p.error.empty()) return Chain{Status::temporary, p.error};
    if (p.truncated) return Chain{Status::temporary, "truncated answer"};
    if (p.rcode == 3) return Chain{Status::nxdomain, "name does not exist (NXDOMAIN)", {}, {}, p.negative_ttl};
    if (p.rcode != 0) return Chain{Status::temporary, rcode_error(p.rcode)};
    std::string cur = normalize_name(qname);
    std::set<std::string> seen{cur};
    uint32_t chain_ttl = UINT32_MAX;  // the CNAMEs followed so far
    for (int hop = 0; hop <= kMaxCnameHops; ++hop) {
        Chain c{Status::ok};
        c.ttl = chain_ttl;
        const Record* cname = nullptr;
        for (const auto& r : p.answers) {
            if (r.owner != cur) continue;
            if (r.type == qtype) {
                c.records.push_back(&r);
                c.ttl = std::min(c.ttl, r.ttl);
            }
            if (r.type == kTypeCname && !cname) cname = &r;
        }
        if (!c.records.empty()) return c;
        if (!cname) return cur == normalize_name(qname) ? Chain{Status::nodata, "no records of this type (NODATA)", {}, {}, std::min(chain_ttl, p.negative_ttl)}
                                                         : Chain{Status::ok, {}, cur, {}, chain_ttl};
        chain_ttl = std::min(chain_ttl, cname->ttl);
        size_t off = cname->rdata;
        std::string target;
        if (!read_name(pkt, off, target) || off != cname->rdata + cname->rdlength || target.empty())
            return Chain{Status::temporary, "malformed CNAME record of " + cur};
        if (!seen.insert(target).second) return Chain{Status::temporary, "CNAME loop at " + target};
        cur = target;
    }
    return Chain{Status::temporary, "CNAME chain longer than " + std::to_string(kMaxCnameHops)};
}

// One MX record's data: preference and exchange, exactly filling the record.
bool read_mx(std::string_view pkt, const Record& r, Mx& mx) {
    if (r.rdlength < 3) return false;
    mx.preference = static_cast<uint16_t>(u16(pkt, r.rdata));
    size_t off = r.rdata + 2;
    return read_name(pkt, off, mx.exchange) && off == r.rdata + r.rdlength;
}

}  // namespace

std::string normalize_name(std::string_view name) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    std::string out(name);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool valid_query_name(std::string_view name) {
    if (name.empty() || name.size() > 253) return false;
    size_t label = 0;
    for (char c : name) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
        if (++label > 63) return false;
    }
    return label > 0;
}

std::string numeric_address(std::string_view s) {
    if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return {};
    std::string in(s);
    unsigned char bytes[16];
    char out[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, in.c_str(), bytes) == 1) return inet_ntop(AF_INET, bytes, out, sizeof out);
    if (inet_pton(AF_INET6, in.c_str(), bytes) == 1) return inet_ntop(AF_INET6, bytes, out, sizeof out);
    return {};
}

MxParse parse_mx_answer(std::string_view packet, const std::string& qname) {
    Packet p = read_packet(packet, qname, kTypeMx);
    Chain c = walk(packet, p, qname, kTypeMx);
    MxParse out;
    out.follow = c.follow;
    out.answer.status = c.status;
    out.answer.error = c.error;
    out.answer.ttl = c.ttl;
    if (c.status != Status::ok || !c.follow.empty()) return out;
    size_t literals = 0;
    for (const Record* r : c.records) {
        Mx mx;
        if (!read_mx(packet, *r, mx)) return MxParse{{Status::temporary, {}, "malformed MX record of " + qname}};
        if (!mx.exchange.empty() && (!numeric_address(mx.exchange).empty() || !valid_query_name(mx.exchange))) {
            log::info("MX record of %s names %s, not a host name: skipped (RFC 5321 5.1)", qname.c_str(), mx.exchange.c_str());
            ++literals;
            continue;
        }
        out.answer.records.push_back(std::move(mx));
    }
    if (out.answer.records.empty() && literals > 0)
        out.answer = MxAnswer{Status::temporary, {}, "every MX record names an IP address or an invalid name, not a host name"};
    return out;
}

AddressParse parse_address_answer(std::string_view packet, const std::string& qname, bool ipv6) {
    int type = ipv6 ? kTypeAaaa : kTypeA;
    Packet p = read_packet(packet, qname, type);
    Chain c = walk(packet, p, qname, type);
    AddressParse out;
    out.follow = c.follow;
    out.answer.status = c.status;
    out.answer.error = c.error;
    out.answer.ttl = c.ttl;
    if (c.status != Status::ok || !c.follow.empty()) return out;
    size_t want = ipv6 ? 16 : 4;
    for (const Record* r : c.records) {
        if (r->rdlength != want) return AddressParse{{Status::temporary, {}, "malformed address record of " + qname}};
        char text[INET6_ADDRSTRLEN];
        inet_ntop(ipv6 ? AF_INET6 : AF_INET, packet.data() + r->rdata, text, sizeof text);
        out.answer.addresses.emplace_back(text);
    }
    return out;
}

TextParse parse_txt_answer(std::string_view packet, const std::string& qname) {
    Packet p = read_packet(packet, qname, kTypeTxt);
    Chain c = walk(packet, p, qname, kTypeTxt);
    TextParse out{{c.status, {}, c.error, c.ttl}, c.follow};
    if (c.status != Status::ok || !c.follow.empty()) return out;
    for (const Record* r : c.records) {
        std::string text;
        for (size_t off = r->rdata, end = r->rdata + r->rdlength; off < end;) {
            size_t len = static_cast<unsigned char>(packet[off]);
            if (off + 1 + len > end) return TextParse{{Status::temporary, {}, "malformed TXT record of " + qname}};
            text.append(packet.substr(off + 1, len));
            off += 1 + len;
        }
        out.answer.records.push_back(std::move(text));
    }
    return out;
}

TextParse parse_ptr_answer(std::string_view packet, const std::string& qname) {
    Packet p = read_packet(packet, qname, kTypePtr);
    Chain c = walk(packet, p, qname, kTypePtr);
    TextParse out{{c.status, {}, c.error, c.ttl}, c.follow};
    if (c.status != Status::ok || !c.follow.empty()) return out;
    for (const Record* r : c.records) {
        size_t off = r->rdata;
        std::string name;
        if (!read_name(packet, off, name) || off != r->rdata + r->rdlength)
            return TextParse{{Status::temporary, {}, "malformed PTR record of " + qname}};
        out.answer.records.push_back(std::move(name));
    }
    return out;
}

}  // namespace ferry::dns
