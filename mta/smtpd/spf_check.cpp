// The SPF check at MAIL FROM: common/verify's evaluator driven by the c-ares resolver, within smtpd_spf_timeout.
#include "mta/smtpd/spf_check.hpp"

#include "common/base/log.hpp"
#include "common/event/event.hpp"

namespace ferry::smtpd {

namespace spf = verify::spf;

namespace {

spf::DnsStatus status_of(dns::Status s) {
    switch (s) {
        case dns::Status::ok: return spf::DnsStatus::ok;
        case dns::Status::nxdomain: return spf::DnsStatus::nxdomain;
        case dns::Status::nodata: return spf::DnsStatus::nodata;
        // A name that cannot be asked (a macro made it invalid) is a name that does not exist.
        case dns::Status::permanent: return spf::DnsStatus::nxdomain;
        case dns::Status::temporary: break;
    }
    return spf::DnsStatus::error;
}

bool is_v6(const std::string& a) { return a.find(':') != std::string::npos; }

// The state of one check; resolver callbacks reach it only through a weak_ptr, so a dropped
// handle (the session went away) is never touched.
struct Running : std::enable_shared_from_this<Running> {
    dns::Resolver& resolver;
    spf::Check check;
    std::function<void(spf::Verdict)> done;
    spf::Request request;
    EventPtr deadline;
    EventPtr kick;
    bool finished = false;

    Running(dns::Resolver& r, spf::Request req, std::function<void(spf::Verdict)> d)
        : resolver(r), check(req), done(std::move(d)), request(std::move(req)) {}

    void finish(spf::Verdict v) {
        if (finished) return;
        finished = true;
        deadline.reset();
        auto d = std::move(done);
        d(std::move(v));  // may drop the handle that owns this object: nothing after this line
    }

    // Runs the evaluator as far as the answers go, then asks the next question or finishes.
    void advance() {
        auto s = check.step();
        if (auto* v = std::get_if<spf::Verdict>(&s)) return finish(std::move(*v));
        ask(std::get<spf::Query>(s));
    }

    void ask(const spf::Query& q) {
        std::weak_ptr<Running> weak = shared_from_this();
        auto answered = [weak, q](spf::Answer a) {
            auto self = weak.lock();
            if (!self || self->finished) return;
            self->check.answer(q, std::move(a));
            self->advance();
        };
        auto text = [answered](dns::TextAnswer a) { answered({status_of(a.status), std::move(a.records)}); };
        switch (q.type) {
            case spf::QueryType::txt: return resolver.txt(q.name, text);
            case spf::QueryType::ptr: return resolver.ptr(q.name, text);
            case spf::QueryType::mx:
                return resolver.mx(q.name, [answered](dns::MxAnswer a) {
                    spf::Answer out{status_of(a.status), {}};
                    for (auto& mx : a.records) out.records.push_back(std::move(mx.exchange));
                    answered(std::move(out));
                });
            case spf::QueryType::a:
            case spf::QueryType::aaaa:
                // The resolver asks A and AAAA together: the family asked for is kept.
                return resolver.addresses(q.name, [answered, v6 = q.type == spf::QueryType::aaaa](dns::AddressAnswer a) {
                    spf::Answer out{status_of(a.status), {}};
                    for (auto& addr : a.addresses)
                        if (is_v6(addr) == v6) out.records.push_back(std::move(addr));
                    if (out.status == spf::DnsStatus::ok && out.records.empty()) out.status = spf::DnsStatus::nodata;
                    answered(std::move(out));
                });
        }
    }
};

class Handle final : public SpfRun {
public:
    explicit Handle(std::shared_ptr<Running> r) : running_(std::move(r)) {}

private:
    std::shared_ptr<Running> running_;
};

std::string identity_value(const spf::Verdict& v) {
    // RFC 8601 2.2 pvalue: an address of atext and dots, else only the domain.
    std::string value = v.identity == "helo" ? v.sender.substr(v.sender.find('@') + 1) : v.sender;
    for (char c : value)
        if (c <= 0x20 || c >= 0x7f || std::string("()<>[]:;\\\",").find(c) != std::string::npos) return v.domain;
    return value;
}

// A comment's text: printable ASCII without parentheses or backslashes.
std::string comment_text(const std::string& s) {
    std::string out;
    for (char c : s.substr(0, 200))
        out += (c < 0x20 || c > 0x7e || c == '(' || c == ')' || c == '\\') ? ' ' : c;
    return out;
}

}  // namespace

std::unique_ptr<SpfRun> start_spf(event_base* base, dns::Resolver& resolver, spf::Request req, double timeout,
                                  std::function<void(spf::Verdict)> done) {
    auto r = std::make_shared<Running>(resolver, req, std::move(done));
    r->deadline.reset(evtimer_new(base, [](evutil_socket_t, short, void* arg) noexcept {
        auto* self = static_cast<Running*>(arg);
        spf::Verdict v = spf::identities(self->request);
        v.result = spf::Result::temperror;
        v.reason = "no verdict within smtpd_spf_timeout";
        self->finish(std::move(v));
    }, r.get()));
    timeval tv = to_timeval(timeout);
    evtimer_add(r->deadline.get(), &tv);
    // The first step runs on the loop too, so `done` never runs inside this call.
    r->kick.reset(evtimer_new(base, [](evutil_socket_t, short, void* arg) noexcept {
        auto* self = static_cast<Running*>(arg);
        auto keep = self->shared_from_this();
        self->advance();
    }, r.get()));
    timeval now{0, 0};
    evtimer_add(r->kick.get(), &now);
    return std::make_unique<Handle>(std::move(r));
}

std::string spf_resinfo(const spf::Verdict& v) {
    std::string r = std::string("spf=") + spf::result_name(v.result);
    if (!v.reason.empty()) r += " (" + comment_text(v.reason) + ")";
    return r + "\n\tsmtp." + v.identity + "=" + identity_value(v);
}

std::string authentication_results(const std::string& authserv_id, const std::optional<spf::Verdict>& spf,
                                   const std::string& others) {
    std::string results = spf ? spf_resinfo(*spf) : "";
    if (!others.empty()) results += (results.empty() ? "" : ";\n\t") + others;
    if (results.empty()) return "Authentication-Results: " + authserv_id + "; none\n";
    return "Authentication-Results: " + authserv_id + ";\n\t" + results + "\n";
}

std::string spf_fail_text(const spf::Verdict& v) {
    std::string why = v.explanation.empty() ? "the domain " + v.domain + " does not designate this host as a sender"
                                            : comment_text(v.explanation);
    return "SPF check failed for <" + v.sender + ">: " + why;
}

}  // namespace ferry::smtpd
