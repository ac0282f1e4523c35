// Blocking DNS queries for ferry-admin check: one c-ares query at a time, driven by select().
#include "common/admin/dns_query.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <sys/select.h>

namespace ferry::admin {

namespace {

std::string lookup_error(const std::string& name, const char* type, int status) {
    return std::string("DNS lookup of ") + name + " " + type + " failed: " + ares_strerror(status);
}

bool no_such_record(int status) { return status == ARES_ENOTFOUND || status == ARES_ENODATA; }

}  // namespace

Result<DnsClient> DnsClient::open(const std::string& servers, std::chrono::milliseconds timeout) {
    static const int init = ares_library_init(ARES_LIB_INIT_ALL);
    if (init != ARES_SUCCESS) return make_error(0, "", std::string("c-ares: ") + ares_strerror(init));
    ares_options opts{};
    opts.timeout = static_cast<int>(timeout.count());
    opts.tries = 2;
    ares_channel ch = nullptr;
    if (int rc = ares_init_options(&ch, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES); rc != ARES_SUCCESS)
        return make_error(0, "", std::string("c-ares: ") + ares_strerror(rc));
    DnsClient c;
    c.channel_.reset(ch, ares_destroy);
    if (!servers.empty())
        if (int rc = ares_set_servers_ports_csv(ch, servers.c_str()); rc != ARES_SUCCESS)
            return make_error(0, "", "bad resolver \"" + servers + "\": " + ares_strerror(rc));
    return c;
}

Result<DnsClient::Answer> DnsClient::query(const std::string& name, int type) {
    Answer answer;
    auto done = [](void* arg, int status, int, unsigned char* abuf, int alen) {
        auto* a = static_cast<Answer*>(arg);
        a->status = status;
        if (status == ARES_SUCCESS && abuf) a->bytes.assign(abuf, abuf + alen);
    };
    ares_query(channel_.get(), name.c_str(), ns_c_in, type, done, &answer);
    for (;;) {
        fd_set readers, writers;
        FD_ZERO(&readers);
        FD_ZERO(&writers);
        int nfds = ares_fds(channel_.get(), &readers, &writers);
        if (nfds == 0) break;
        timeval tv;
        timeval* wait = ares_timeout(channel_.get(), nullptr, &tv);
        select(nfds, &readers, &writers, nullptr, wait);
        ares_process(channel_.get(), &readers, &writers);
    }
    return answer;
}

Result<std::vector<std::pair<int, std::string>>> DnsClient::mx(const std::string& name) {
    auto a = query(name, ns_t_mx);
    std::vector<std::pair<int, std::string>> out;
    if (no_such_record(a->status)) return out;
    ares_mx_reply* reply = nullptr;
    int rc = a->status == ARES_SUCCESS ? ares_parse_mx_reply(a->bytes.data(), static_cast<int>(a->bytes.size()), &reply)
                                       : a->status;
    if (rc == ARES_ENODATA) return out;
    if (rc != ARES_SUCCESS) return make_error(0, "", lookup_error(name, "MX", rc));
    for (auto* r = reply; r; r = r->next) out.emplace_back(r->priority, r->host);
    ares_free_data(reply);
    return out;
}

Result<std::vector<std::string>> DnsClient::txt(const std::string& name) {
    auto a = query(name, ns_t_txt);
    std::vector<std::string> out;
    if (no_such_record(a->status)) return out;
    ares_txt_ext* reply = nullptr;
    int rc = a->status == ARES_SUCCESS
                 ? ares_parse_txt_reply_ext(a->bytes.data(), static_cast<int>(a->bytes.size()), &reply)
                 : a->status;
    if (rc == ARES_ENODATA) return out;
    if (rc != ARES_SUCCESS) return make_error(0, "", lookup_error(name, "TXT", rc));
    for (auto* r = reply; r; r = r->next) {
        if (r->record_start || out.empty()) out.emplace_back();
        out.back().append(reinterpret_cast<const char*>(r->txt), r->length);
    }
    ares_free_data(reply);
    return out;
}

Result<std::vector<std::string>> DnsClient::addresses(const std::string& name) {
    std::vector<std::string> out;
    char text[INET6_ADDRSTRLEN];
    auto a = query(name, ns_t_a);
    if (a->status == ARES_SUCCESS) {
        ares_addrttl rr[16];
        int n = 16;
        if (ares_parse_a_reply(a->bytes.data(), static_cast<int>(a->bytes.size()), nullptr, rr, &n) == ARES_SUCCESS)
            for (int i = 0; i < n; ++i) out.push_back(inet_ntop(AF_INET, &rr[i].ipaddr, text, sizeof text));
    } else if (!no_such_record(a->status)) {
        return make_error(0, "", lookup_error(name, "A", a->status));
    }
    auto b = query(name, ns_t_aaaa);
    if (b->status == ARES_SUCCESS) {
        ares_addr6ttl rr[16];
        int n = 16;
        if (ares_parse_aaaa_reply(b->bytes.data(), static_cast<int>(b->bytes.size()), nullptr, rr, &n) == ARES_SUCCESS)
            for (int i = 0; i < n; ++i) out.push_back(inet_ntop(AF_INET6, &rr[i].ip6addr, text, sizeof text));
    }
    return out;
}

}  // namespace ferry::admin
