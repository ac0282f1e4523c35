// Blocking DNS queries for ferry-admin check (c-ares): MX, TXT and addresses, from a chosen server.
#pragma once

#include <ares.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/base/result.hpp"

namespace ferry::admin {

// Each lookup returns the records, an empty list when the name or type does not exist, or an error
// (timeout, SERVFAIL) whose text says so.
class DnsClient {
public:
    // `servers`: "IP[:PORT]" entries separated by commas ("[::1]:53" for IPv6); empty: /etc/resolv.conf.
    static Result<DnsClient> open(const std::string& servers, std::chrono::milliseconds timeout);

    Result<std::vector<std::pair<int, std::string>>> mx(const std::string& name);  // (preference, exchange)
    Result<std::vector<std::string>> txt(const std::string& name);                 // each record's strings joined
    Result<std::vector<std::string>> addresses(const std::string& name);           // A, then AAAA

private:
    struct Answer {
        int status = ARES_ETIMEOUT;
        std::vector<unsigned char> bytes;
    };
    Result<Answer> query(const std::string& name, int type);

    std::shared_ptr<std::remove_pointer_t<ares_channel>> channel_;
};

}  // namespace ferry::admin
