// The DKIM check of a received message: reads it from the spool in slices on the loop, asks DNS for each signature's key.
#include "mta/smtpd/dkim_check.hpp"

#include <ctime>
#include <random>

#include "common/base/log.hpp"
#include "common/event/event.hpp"
#include "common/verify/arc.hpp"
#include "common/verify/dkim.hpp"
#include "common/verify/dmarc.hpp"
#include "mta/smtpd/spf_check.hpp"

namespace ferry::smtpd {

namespace arc = verify::arc;
namespace dkim = verify::dkim;
namespace dmarc = verify::dmarc;

namespace {

// Read per turn of the loop, so that a large message does not hold other sessions up.
constexpr size_t kSlice = 256 * 1024;

dkim::KeyAnswer key_answer(dns::TextAnswer a) {
    using S = dkim::KeyAnswer::Status;
    S s = a.status == dns::Status::ok ? S::ok
          : a.status == dns::Status::nxdomain || a.status == dns::Status::permanent ? S::nxdomain
          : a.status == dns::Status::nodata ? S::nodata : S::error;
    return {s, std::move(a.records)};
}

// The state of one check; resolver callbacks reach it only through a weak_ptr.
struct Running : std::enable_shared_from_this<Running> {
    std::shared_ptr<const CheckedMessage> message;
    MessageCheck::Done done;
    dns::Resolver& resolver;
    std::string authserv_id;
    DmarcMode dmarc_mode;
    dkim::Verifier verifier{std::time(nullptr)};
    std::unique_ptr<arc::Verifier> chain;  // null unless smtpd_arc_verify
    std::string from;          // the From: domain DMARC is about
    std::optional<Error> refusal;
    uint64_t at = 0;
    size_t waiting = 0;
    EventPtr deadline, kick;
    bool finished = false;

    Running(std::shared_ptr<const CheckedMessage> m, MessageCheck::Done d, dns::Resolver& r, std::string id, DmarcMode mode)
        : message(std::move(m)), done(std::move(d)), resolver(r), authserv_id(std::move(id)), dmarc_mode(mode) {}

    // One slice of the message; the next turn reads on, or the keys are asked for at the end.
    void read_slice() {
        std::string buf(kSlice, '\0');
        auto n = message->data.read(at, buf.data(), buf.size());
        if (!n) {
            log::warnx("%s: %s: dkim: %s", message->session.c_str(), message->id.c_str(), n.error().what().c_str());
            return finish("dkim=temperror (cannot read the message)");
        }
        at += *n;
        verifier.feed(std::string_view(buf.data(), *n));
        if (chain) chain->feed(std::string_view(buf.data(), *n));
        if (*n > 0 && at < message->data.length) {
            timeval now{0, 0};
            evtimer_add(kick.get(), &now);
            return;
        }
        verifier.finish();
        if (chain) chain->finish();
        ask_keys();
    }

    void ask_keys() {
        std::weak_ptr<Running> weak = shared_from_this();
        for (size_t i = 0; i < verifier.count(); ++i) {
            std::string name = verifier.key_name(i);
            if (name.empty()) continue;
            ++waiting;
            resolver.txt(name, [weak, i](dns::TextAnswer a) {
                auto self = weak.lock();
                if (!self || self->finished) return;
                self->verifier.key_answer(i, key_answer(std::move(a)));
                if (--self->waiting == 0) self->keys_done();
            });
        }
        if (chain) ask_arc_keys(weak);
        if (waiting == 0) keys_done();
    }

    // The ARC chain's keys are asked for at the same time as the DKIM signatures'.
    void ask_arc_keys(const std::weak_ptr<Running>& weak) {
        for (const auto& name : chain->key_names()) {
            ++waiting;
            resolver.txt(name, [weak, name](dns::TextAnswer a) {
                auto self = weak.lock();
                if (!self || self->finished) return;
                self->chain->key_answer(name, key_answer(std::move(a)));
                if (--self->waiting == 0) self->keys_done();
            });
        }
    }

    void keys_done() {
        if (dmarc_mode == DmarcMode::off) return finish(results());
        int froms = 0;
        for (const auto& f : verifier.header())
            if (f.name == "from" && ++froms == 1) from = dmarc::from_domain(f.raw.substr(f.raw.find(':') + 1));
        if (froms != 1 || from.empty()) return finish(results());  // no one author domain: no DMARC verdict
        ask_policy(from);
    }

    // RFC 7489 6.6.3: the From: domain's record, else the organisational domain's.
    void ask_policy(const std::string& domain) {
        std::weak_ptr<Running> weak = shared_from_this();
        resolver.txt("_dmarc." + domain, [weak, domain](dns::TextAnswer a) {
            auto self = weak.lock();
            if (!self || self->finished) return;
            self->on_policy(domain, std::move(a));
        });
    }

    void on_policy(const std::string& domain, dns::TextAnswer a) {
        if (a.status == dns::Status::temporary) return finish(results() + ";\n\tdmarc=temperror header.from=" + from);
        std::vector<std::string> records;
        for (auto& r : a.records)
            if (dmarc::is_dmarc_record(r)) records.push_back(std::move(r));
        std::string org = dmarc::organizational_domain(from);
        if (records.empty() && domain != org) return ask_policy(org);
        auto rec = records.size() == 1 ? dmarc::parse_record(records[0]) : std::nullopt;
        if (!rec) return finish(results() + ";\n\tdmarc=none header.from=" + from);
        finish(results() + ";\n\t" + verdict(*rec, domain));
    }

    std::string verdict(const dmarc::Record& rec, const std::string& record_domain) {
        dmarc::Identities ids;
        ids.from_domain = from;
        const auto& spf = message->spf;
        if (spf && spf->result == verify::spf::Result::pass) ids.spf_domain = spf->domain;
        for (size_t i = 0; i < verifier.count(); ++i)
            if (verifier.result(i).status == dkim::Status::pass) ids.dkim_domains.push_back(verifier.result(i).domain);
        static thread_local std::minstd_rand sampler{std::random_device{}()};
        auto v = dmarc::evaluate(ids, rec, record_domain, static_cast<int>(sampler() % 100));
        log::info("%s: %s: dmarc=%s header.from=%s p=%s (%s)", message->session.c_str(), message->id.c_str(),
                  dmarc::result_name(v.result), from.c_str(), dmarc::policy_name(v.policy), v.reason.c_str());
        std::string text = std::string("dmarc=") + dmarc::result_name(v.result) + " (p=" + dmarc::policy_name(v.policy) +
                           ") header.from=" + from;
        if (dmarc_mode != DmarcMode::reject || v.result != dmarc::Result::fail) return text;
        if (v.disposition == dmarc::Policy::reject)
            refusal = make_error(550, "5.7.1", "Message rejected by the DMARC policy of " + from, "dmarc=fail p=reject");
        // ferry-mda files the message into Junk on this property of our own field (ferry-mda(8), Junk).
        if (v.disposition == dmarc::Policy::quarantine) text += " policy.dmarc=quarantine";
        return text;
    }

    // One resinfo per signature, "dkim=none" without any (RFC 8601 2.7.1).
    std::string results() const {
        std::string out;
        for (size_t i = 0; i < verifier.count(); ++i) {
            const auto& r = verifier.result(i);
            log::info("%s: %s: %s", message->session.c_str(), message->id.c_str(), dkim::result_text(r).c_str());
            out += (out.empty() ? "" : ";\n\t") + dkim::result_text(r);
        }
        if (out.empty()) out = "dkim=none";
        return out + arc_result();
    }

    // RFC 8617 7.2: the chain's result with the client's address; nothing without ARC sets.
    std::string arc_result() const {
        if (!chain) return "";
        auto r = chain->result();
        if (r.status == arc::Status::none) return "";
        std::string text = arc::result_text(r) + " smtp.remote-ip=" + message->client;
        log::info("%s: %s: %s", message->session.c_str(), message->id.c_str(), text.c_str());
        return ";\n\t" + text;
    }

    // On time-out: every signature still waiting for its key is a temperror.
    std::string timed_out() {
        for (size_t i = 0; i < verifier.count(); ++i)
            if (!verifier.key_name(i).empty()) verifier.key_answer(i, {dkim::KeyAnswer::Status::error, {}});
        return results();
    }

    void finish(const std::string& resinfo) {
        if (finished) return;
        finished = true;
        deadline.reset();
        kick.reset();
        Finding f;
        f.refusal = refusal;
        f.fields = authentication_results(authserv_id, message->spf, resinfo);
        auto d = std::move(done);
        d(std::move(f));  // may drop the handle that owns this object: nothing after this line
    }
};

class Handle final : public CheckRun {
public:
    explicit Handle(std::shared_ptr<Running> r) : running_(std::move(r)) {}

private:
    std::shared_ptr<Running> running_;
};

// Mail on its way out is signed by ferry-relay, not verified here; an SPF verdict, were there one, is still written.
class Skipped final : public CheckRun {
public:
    Skipped(event_base* base, MessageCheck::Done d, std::string fields) : done_(std::move(d)), fields_(std::move(fields)) {
        ev_.reset(evtimer_new(base, [](evutil_socket_t, short, void* arg) noexcept {
            auto* self = static_cast<Skipped*>(arg);
            Finding f;
            f.fields = std::move(self->fields_);
            auto d = std::move(self->done_);
            d(std::move(f));
        }, this));
        timeval now{0, 0};
        evtimer_add(ev_.get(), &now);
    }

private:
    MessageCheck::Done done_;
    std::string fields_;
    EventPtr ev_;
};

}  // namespace

std::unique_ptr<CheckRun> DkimCheck::start(std::shared_ptr<const CheckedMessage> m, Done done) {
    if (m->relay_client)
        return std::make_unique<Skipped>(base_, std::move(done),
                                         m->spf ? authentication_results(authserv_id_, m->spf, "") : std::string());
    auto r = std::make_shared<Running>(std::move(m), std::move(done), resolver_, authserv_id_, dmarc_);
    if (arc_) r->chain = std::make_unique<arc::Verifier>(std::time(nullptr));
    r->deadline.reset(evtimer_new(base_, [](evutil_socket_t, short, void* arg) noexcept {
        auto* self = static_cast<Running*>(arg);
        auto keep = self->shared_from_this();
        self->finish(self->timed_out());
    }, r.get()));
    timeval tv = to_timeval(timeout_);
    evtimer_add(r->deadline.get(), &tv);
    r->kick.reset(evtimer_new(base_, [](evutil_socket_t, short, void* arg) noexcept {
        auto* self = static_cast<Running*>(arg);
        auto keep = self->shared_from_this();
        self->read_slice();
    }, r.get()));
    timeval now{0, 0};
    evtimer_add(r->kick.get(), &now);
    return std::make_unique<Handle>(std::move(r));
}

}  // namespace ferry::smtpd
