// The c-ares resolver on a libevent loop: sockets and timeouts as events, answers parsed by resolver_answer.
#include "common/event/resolver.hpp"

#include <ares.h>
#include <arpa/nameser.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include "common/base/log.hpp"
#include "common/event/post.hpp"
#include "common/event/event.hpp"
#include "common/event/resolver_answer.hpp"

namespace ferry::dns {

namespace {

// "1.2.3.4:53, [::1]:5353 10.0.0.1" -> c-ares' "1.2.3.4:53,[::1]:5353,10.0.0.1".
std::string servers_csv(const std::string& servers) {
    std::string csv;
    for (char c : servers) {
        if (c == ',' || c == ' ' || c == '\t') {
            if (!csv.empty() && csv.back() != ',') csv += ',';
        } else {
            csv += c;
        }
    }
    if (!csv.empty() && csv.back() == ',') csv.pop_back();
    return csv;
}

std::string seconds_text(double s) {
    char buf[32];
    snprintf(buf, sizeof buf, "%gs", s);
    return buf;
}

// The state of one mx() or addresses() call: the deadline, the names seen on the CNAME chain.
struct Lookup {
    std::string name;
    std::string timeout;  // "10s", for the error text
    EventPtr deadline;
    bool finished = false;
    std::function<void(Status, std::string)> fail;  // posts the error answer to the caller

    // Finishes with an error unless something finished the lookup already.
    void fail_once(Status s, std::string why) {
        if (finished) return;
        finished = true;
        deadline.reset();
        fail(s, std::move(why));
    }
};

class AresResolver;

// One query of a lookup, the c-ares callback argument.
struct Query {
    AresResolver* self;
    std::shared_ptr<Lookup> lookup;
    std::string name;
    int type;
    int hops;
    std::set<std::string> seen;
    std::function<void(std::string_view packet, int status, Query&)> on_answer;
    uint32_t ttl = UINT32_MAX;  // the smallest TTL of the CNAMEs followed by the queries before this one
};

class AresResolver final : public Resolver {
public:
    AresResolver(event_base* base, double timeout) : base_(base), timeout_(timeout) {}

    ~AresResolver() override {
        stopping_ = true;
        if (channel_) ares_destroy(channel_);  // every pending query's callback runs (ARES_EDESTRUCTION)
        fd_events_.clear();
    }

    Result<void> init(const std::string& servers) {
        ares_options opts{};
        int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
        opts.sock_state_cb = &AresResolver::sock_state;
        opts.sock_state_cb_data = this;
        // Three tries, the last ones longer (c-ares doubles them); the lookup's own deadline caps the total.
        opts.timeout = std::max(100, static_cast<int>(timeout_ * 1000 / 3));
        opts.tries = 3;
        opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
        if (int rc = ares_init_options(&channel_, &opts, mask); rc != ARES_SUCCESS)
            return make_error(0, "", "cannot start the DNS resolver", ares_strerror(rc));
        std::string csv = servers_csv(servers);
        if (!csv.empty()) {
            if (int rc = ares_set_servers_ports_csv(channel_, csv.c_str()); rc != ARES_SUCCESS)
                return make_error(0, "", "dns_servers: cannot use \"" + servers + "\"", ares_strerror(rc));
        }
        timer_.reset(evtimer_new(base_, &AresResolver::on_timer, this));
        return {};
    }

    void mx(const std::string& name, std::function<void(MxAnswer)> done) override {
        auto shared_done = std::make_shared<std::function<void(MxAnswer)>>(std::move(done));
        auto lk = start_lookup(name, [this, shared_done](Status s, std::string e) {
            post(base_, [shared_done, a = MxAnswer{s, {}, std::move(e)}]() mutable { (*shared_done)(std::move(a)); });
        });
        if (!lk) return;
        auto on_answer = [this, shared_done](std::string_view packet, int status, Query& q) {
            MxParse p = packet.empty() ? MxParse{{status_of(status), {}, ares_error_text(status)}} : parse_mx_answer(packet, q.name);
            if (!p.follow.empty() && follow(q, p.follow, p.answer.ttl)) return;
            p.answer.ttl = std::min(p.answer.ttl, q.ttl);
            finish(*q.lookup, [shared_done, a = std::move(p.answer)]() mutable { (*shared_done)(std::move(a)); });
        };
        send(lk, lk->name, ns_t_mx, 0, {}, on_answer);
    }

    void addresses(const std::string& name, std::function<void(AddressAnswer)> done) override {
        if (auto literal = numeric_address(name); !literal.empty()) {
            post(base_, [done = std::move(done), literal] { done(AddressAnswer{Status::ok, {literal}, {}}); });
            return;
        }
        // Both answers are gathered here; the lookup finishes when the second arrives.
        struct Pair { AddressAnswer a, aaaa; int pending = 2; std::function<void(AddressAnswer)> done; };
        auto pair = std::make_shared<Pair>();
        pair->done = std::move(done);
        auto lk = start_lookup(name, [this, pair](Status s, std::string e) {
            post(base_, [pair, a = AddressAnswer{s, {}, std::move(e)}]() mutable { pair->done(std::move(a)); });
        });
        if (!lk) return;
        for (bool ipv6 : {false, true}) {
            auto on_answer = [this, pair, ipv6](std::string_view packet, int status, Query& q) {
                AddressParse p = packet.empty() ? AddressParse{{status_of(status), {}, ares_error_text(status)}}
                                                : parse_address_answer(packet, q.name, ipv6);
                if (!p.follow.empty() && follow(q, p.follow, p.answer.ttl)) return;
                p.answer.ttl = std::min(p.answer.ttl, q.ttl);
                (ipv6 ? pair->aaaa : pair->a) = std::move(p.answer);
                if (--pair->pending > 0) return;
                finish(*q.lookup, [pair]() { pair->done(merge(pair->a, pair->aaaa)); });
            };
            send(lk, lk->name, ipv6 ? ns_t_aaaa : ns_t_a, 0, {}, on_answer);
        }
    }

    void txt(const std::string& name, std::function<void(TextAnswer)> done) override {
        text_lookup(name, ns_t_txt, std::move(done));
    }

    void ptr(const std::string& name, std::function<void(TextAnswer)> done) override {
        text_lookup(name, ns_t_ptr, std::move(done));
    }

private:
    void text_lookup(const std::string& name, int type, std::function<void(TextAnswer)> done) {
        auto shared_done = std::make_shared<std::function<void(TextAnswer)>>(std::move(done));
        auto lk = start_lookup(name, [this, shared_done](Status s, std::string e) {
            post(base_, [shared_done, a = TextAnswer{s, {}, std::move(e)}]() mutable { (*shared_done)(std::move(a)); });
        });
        if (!lk) return;
        auto on_answer = [this, shared_done, type](std::string_view packet, int status, Query& q) {
            TextParse p = packet.empty() ? TextParse{{status_of(status), {}, ares_error_text(status)}}
                          : type == ns_t_txt ? parse_txt_answer(packet, q.name) : parse_ptr_answer(packet, q.name);
            if (!p.follow.empty() && follow(q, p.follow, p.answer.ttl)) return;
            p.answer.ttl = std::min(p.answer.ttl, q.ttl);
            finish(*q.lookup, [shared_done, a = std::move(p.answer)]() mutable { (*shared_done)(std::move(a)); });
        };
        send(lk, lk->name, type, 0, {}, on_answer);
    }

    // A and AAAA into one answer: addresses when either has some, else the more hopeful failure.
    static AddressAnswer merge(const AddressAnswer& a, const AddressAnswer& aaaa) {
        AddressAnswer out{Status::ok, a.addresses, {}, std::min(a.ttl, aaaa.ttl)};
        out.addresses.insert(out.addresses.end(), aaaa.addresses.begin(), aaaa.addresses.end());
        if (!out.addresses.empty()) {
            // Only the halves that gave addresses count: a failed half has no TTL to honour.
            if (a.addresses.empty()) out.ttl = aaaa.ttl;
            else if (aaaa.addresses.empty()) out.ttl = a.ttl;
            return out;
        }
        for (const auto* x : {&a, &aaaa})
            if (x->status == Status::temporary || x->status == Status::permanent) return AddressAnswer{x->status, {}, x->error};
        if (a.status == Status::nxdomain || aaaa.status == Status::nxdomain)
            return AddressAnswer{Status::nxdomain, {}, a.status == Status::nxdomain ? a.error : aaaa.error, std::min(a.ttl, aaaa.ttl)};
        return AddressAnswer{Status::nodata, {}, "no A or AAAA records (NODATA)", std::min(a.ttl, aaaa.ttl)};
    }

    static Status status_of(int ares_status) {
        switch (ares_status) {
            case ARES_ENOTFOUND: return Status::nxdomain;
            case ARES_ENODATA: return Status::nodata;
            case ARES_EBADNAME: return Status::permanent;
            default: return Status::temporary;
        }
    }

    static std::string ares_error_text(int ares_status) {
        if (ares_status == ARES_EDESTRUCTION || ares_status == ARES_ECANCELLED) return "resolver stopped";
        return ares_strerror(ares_status);
    }

    // A lookup with its deadline; null (and `fail` already posted) for a name that cannot be asked.
    std::shared_ptr<Lookup> start_lookup(const std::string& name, std::function<void(Status, std::string)> fail) {
        auto lk = std::make_shared<Lookup>();
        lk->name = normalize_name(name);
        lk->timeout = seconds_text(timeout_);
        lk->fail = std::move(fail);
        if (!valid_query_name(lk->name)) {
            lk->fail(Status::permanent, "\"" + name + "\" is not a valid domain name");
            return nullptr;
        }
        lk->deadline.reset(evtimer_new(base_, &AresResolver::on_deadline, lk.get()));
        timeval tv = to_timeval(timeout_);
        evtimer_add(lk->deadline.get(), &tv);
        return lk;
    }

    static void on_deadline(evutil_socket_t, short, void* arg) noexcept {
        auto* lk = static_cast<Lookup*>(arg);
        lk->fail_once(Status::temporary, "no answer from the DNS servers within " + lk->timeout);
    }

    // Finishes a lookup once: the deadline or a stop may have finished it already.
    void finish(Lookup& lk, std::function<void()> fn) {
        if (lk.finished) return;
        lk.finished = true;
        lk.deadline.reset();
        post(base_, std::move(fn));
    }

    // Asks for the CNAME target `target` next; false when the chain is too long or loops (then finished).
    bool follow(Query& q, const std::string& target, uint32_t chain_ttl) {
        std::string why;
        if (q.hops + 1 > kMaxCnameHops) why = "CNAME chain longer than " + std::to_string(kMaxCnameHops);
        else if (q.seen.count(target) || target == q.lookup->name) why = "CNAME loop at " + target;
        if (!why.empty()) {
            q.lookup->fail_once(Status::temporary, why);
            return true;
        }
        auto seen = q.seen;
        seen.insert(q.name);
        send(q.lookup, target, q.type, q.hops + 1, std::move(seen), q.on_answer, std::min(q.ttl, chain_ttl));
        return true;
    }

    void send(const std::shared_ptr<Lookup>& lk, const std::string& name, int type, int hops, std::set<std::string> seen,
              std::function<void(std::string_view, int, Query&)> on_answer, uint32_t ttl = UINT32_MAX) {
        if (lk->finished || stopping_) return;
        auto* q = new Query{this, lk, name, type, hops, std::move(seen), std::move(on_answer), ttl};
        ares_query(channel_, name.c_str(), ns_c_in, type, &AresResolver::on_query, q);
        rearm_timer();
    }

    static void on_query(void* arg, int status, int, unsigned char* abuf, int alen) noexcept {
        std::unique_ptr<Query> q(static_cast<Query*>(arg));
        if (q->self->stopping_) return q->lookup->fail_once(Status::temporary, "resolver stopped");
        if (q->lookup->finished) return;
        // c-ares hands over the packet also for NXDOMAIN and SERVFAIL: our parser judges it.
        std::string_view packet = abuf && alen > 0 ? std::string_view(reinterpret_cast<char*>(abuf), static_cast<size_t>(alen))
                                                   : std::string_view();
        q->on_answer(packet, status, *q);
    }

    static void sock_state(void* data, ares_socket_t fd, int readable, int writable) noexcept {
        auto* self = static_cast<AresResolver*>(data);
        self->fd_events_.erase(fd);
        if (!readable && !writable) return;
        short what = static_cast<short>(EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
        EventPtr ev(event_new(self->base_, fd, what, &AresResolver::on_socket, self));
        event_add(ev.get(), nullptr);
        self->fd_events_[fd] = std::move(ev);
    }

    static void on_socket(evutil_socket_t fd, short what, void* arg) noexcept {
        auto* self = static_cast<AresResolver*>(arg);
        ares_process_fd(self->channel_, (what & EV_READ) ? fd : ARES_SOCKET_BAD, (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
        self->rearm_timer();
    }

    static void on_timer(evutil_socket_t, short, void* arg) noexcept {
        auto* self = static_cast<AresResolver*>(arg);
        ares_process_fd(self->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        self->rearm_timer();
    }

    // c-ares' next retry or timeout, as one timer.
    void rearm_timer() {
        if (!timer_ || stopping_) return;
        timeval tv;
        if (ares_timeout(channel_, nullptr, &tv)) evtimer_add(timer_.get(), &tv);
        else evtimer_del(timer_.get());
    }

    event_base* base_;
    double timeout_;
    ares_channel channel_ = nullptr;
    EventPtr timer_;
    std::map<ares_socket_t, EventPtr> fd_events_;
    bool stopping_ = false;
};

// ares_library_init once per process (a no-op on Linux since 1.11, but documented as required).
void library_init() {
    static std::once_flag once;
    std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

}  // namespace

void Resolver::txt(const std::string&, std::function<void(TextAnswer)> done) {
    done(TextAnswer{Status::temporary, {}, "this resolver does not look up TXT records"});
}

void Resolver::ptr(const std::string&, std::function<void(TextAnswer)> done) {
    done(TextAnswer{Status::temporary, {}, "this resolver does not look up PTR records"});
}

Result<std::unique_ptr<Resolver>> make_resolver(event_base* base, const std::string& servers, double timeout) {
    library_init();
    if (!(timeout > 0) || !std::isfinite(timeout)) return make_error(0, "", "dns_timeout must be positive");
    auto r = std::make_unique<AresResolver>(base, timeout);
    if (auto ok = r->init(servers); !ok) return ok.error();
    return std::unique_ptr<Resolver>(std::move(r));
}

}  // namespace ferry::dns
