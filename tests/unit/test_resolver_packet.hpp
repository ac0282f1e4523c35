// Hand-built DNS answers (RFC 1035 wire format) for the resolver's unit tests and fuzz seeds.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <string>

namespace ferry::test {

class DnsPacket {
public:
    enum Type : uint16_t { A = 1, CNAME = 5, SOA = 6, MX = 15, TXT = 16, AAAA = 28 };

    DnsPacket(const std::string& qname, uint16_t qtype, int rcode = 0, bool truncated = false, uint16_t id = 0x1234) {
        u16(id);
        u16(static_cast<uint16_t>(0x8180 | (truncated ? 0x0200 : 0) | (rcode & 0xf)));
        u16(1);
        u16(0);
        u16(0);
        u16(0);
        name(qname);
        u16(qtype);
        u16(1);
    }

    DnsPacket& mx(const std::string& owner, uint16_t pref, const std::string& exchange) {
        std::string rdata;
        rdata += static_cast<char>(pref >> 8);
        rdata += static_cast<char>(pref & 0xff);
        rdata += encode(exchange);
        return rr(owner, MX, rdata);
    }
    DnsPacket& cname(const std::string& owner, const std::string& target, uint32_t ttl = 300) { return rr(owner, CNAME, encode(target), ttl); }
    DnsPacket& a(const std::string& owner, const char* addr, uint32_t ttl = 300) {
        unsigned char b[4];
        inet_pton(AF_INET, addr, b);
        return rr(owner, A, std::string(reinterpret_cast<char*>(b), 4), ttl);
    }
    DnsPacket& aaaa(const std::string& owner, const char* addr) {
        unsigned char b[16];
        inet_pton(AF_INET6, addr, b);
        return rr(owner, AAAA, std::string(reinterpret_cast<char*>(b), 16));
    }
    DnsPacket& txt(const std::string& owner, const std::string& text, uint32_t ttl = 300) {
        return rr(owner, TXT, static_cast<char>(text.size()) + text, ttl);
    }
    // An answer-section record; `section` 8 puts it in the authority section (after every answer).
    DnsPacket& rr(const std::string& owner, uint16_t type, const std::string& rdata, uint32_t ttl = 300, size_t section = 6) {
        name(owner);
        u16(type);
        u16(1);
        u16(static_cast<uint16_t>(ttl >> 16));
        u16(static_cast<uint16_t>(ttl & 0xffff));
        u16(static_cast<uint16_t>(rdata.size()));
        bytes += rdata;
        uint16_t n = static_cast<uint16_t>((static_cast<unsigned char>(bytes[section]) << 8 | static_cast<unsigned char>(bytes[section + 1])) + 1);
        bytes[section] = static_cast<char>(n >> 8);
        bytes[section + 1] = static_cast<char>(n & 0xff);
        return *this;
    }
    // The SOA of a negative answer (RFC 2308 3), in the authority section.
    DnsPacket& soa(const std::string& zone, uint32_t ttl, uint32_t minimum) {
        std::string rdata = encode("ns." + zone) + encode("hostmaster." + zone);
        for (uint32_t v : {1u, 3600u, 600u, 86400u, minimum})
            for (int shift : {24, 16, 8, 0}) rdata += static_cast<char>((v >> shift) & 0xff);
        return rr(zone, SOA, rdata, ttl, 8);
    }

    static std::string encode(const std::string& n) {
        std::string out;
        size_t start = 0;
        while (start < n.size()) {
            size_t dot = n.find('.', start);
            if (dot == std::string::npos) dot = n.size();
            out += static_cast<char>(dot - start);
            out += n.substr(start, dot - start);
            start = dot + 1;
        }
        out += '\0';
        return out;
    }

    std::string bytes;

private:
    void u16(uint16_t v) {
        bytes += static_cast<char>(v >> 8);
        bytes += static_cast<char>(v & 0xff);
    }
    void name(const std::string& n) { bytes += encode(n); }
};

}  // namespace ferry::test
