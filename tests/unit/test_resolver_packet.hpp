// Hand-built DNS answers (RFC 1035 wire format) for the resolver's unit tests and fuzz seeds.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <string>

namespace ferry::test {

class DnsPacket {
public:
    enum Type : uint16_t { A = 1, CNAME = 5, MX = 15, AAAA = 28 };

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
    DnsPacket& cname(const std::string& owner, const std::string& target) { return rr(owner, CNAME, encode(target)); }
    DnsPacket& a(const std::string& owner, const char* addr) {
        unsigned char b[4];
        inet_pton(AF_INET, addr, b);
        return rr(owner, A, std::string(reinterpret_cast<char*>(b), 4));
    }
    DnsPacket& aaaa(const std::string& owner, const char* addr) {
        unsigned char b[16];
        inet_pton(AF_INET6, addr, b);
        return rr(owner, AAAA, std::string(reinterpret_cast<char*>(b), 16));
    }
    DnsPacket& rr(const std::string& owner, uint16_t type, const std::string& rdata) {
        name(owner);
        u16(type);
        u16(1);
        u16(0);
        u16(300);
        u16(static_cast<uint16_t>(rdata.size()));
        bytes += rdata;
        uint16_t an = static_cast<uint16_t>((static_cast<unsigned char>(bytes[6]) << 8 | static_cast<unsigned char>(bytes[7])) + 1);
        bytes[6] = static_cast<char>(an >> 8);
        bytes[7] = static_cast<char>(an & 0xff);
        return *this;
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
