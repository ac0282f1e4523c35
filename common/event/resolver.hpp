// DNS lookups on the event loop (c-ares), behind an interface so tests can put a fake in its place.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/base/result.hpp"

namespace ferry::dns {

// How a lookup ended. `nxdomain` and `nodata` are answers (the name or the type does not exist);
// `temporary` is every doubt (timeout, SERVFAIL, refused, truncated or malformed answer, a CNAME
// loop); `permanent` is a name that can never resolve (not a valid domain name).
enum class Status { ok, nxdomain, nodata, temporary, permanent };

struct Mx {
    uint16_t preference = 0;
    std::string exchange;  // lower case, no trailing dot; "" for the null MX "." (RFC 7505)
};

struct MxAnswer {
    Status status = Status::temporary;
    std::vector<Mx> records;  // as answered, CNAMEs already followed by the server or by us
    std::string error;        // for logs and reports when status != ok
    uint32_t ttl = 0;         // seconds the answer may be kept: the smallest TTL used, or the negative TTL (RFC 2308)
};

struct AddressAnswer {
    Status status = Status::temporary;
    std::vector<std::string> addresses;  // numeric: "192.0.2.1", "2001:db8::1"; A first, then AAAA
    std::string error;
    uint32_t ttl = 0;
};

// TXT strings (each record's character-strings joined, RFC 7208 3.3) or PTR names (lower case, no trailing dot).
struct TextAnswer {
    Status status = Status::temporary;
    std::vector<std::string> records;
    std::string error;
    uint32_t ttl = 0;
};

// Every callback runs exactly once, always later on the loop (never inside the call that asked),
// also when the resolver is destroyed first (then with Status::temporary, "resolver stopped").
// A caller whose object may go away first guards itself (a weak_ptr or a shared "alive" flag).
class Resolver {
public:
    virtual ~Resolver() = default;
    virtual void mx(const std::string& name, std::function<void(MxAnswer)> done) = 0;
    // A and AAAA together; `ok` when either has records. A numeric address ("192.0.2.1",
    // "2001:db8::1") answers itself without a query (the router routes address literals so).
    virtual void addresses(const std::string& name, std::function<void(AddressAnswer)> done) = 0;
    // TXT records of `name`; PTR records of `name` (a reverse name such as 1.2.0.192.in-addr.arpa).
    // A resolver that only routes mail need not have them: these answer Status::temporary at once.
    virtual void txt(const std::string& name, std::function<void(TextAnswer)> done);
    virtual void ptr(const std::string& name, std::function<void(TextAnswer)> done);
};

// The c-ares resolver on `base`. `servers` is the dns_servers key: addresses with optional ports,
// separated by commas or spaces ("127.0.0.53:5353, [::1]:53"); empty means /etc/resolv.conf.
// `timeout` bounds each query, in seconds, retries included.
Result<std::unique_ptr<Resolver>> make_resolver(event_base* base, const std::string& servers, double timeout);

}  // namespace ferry::dns
