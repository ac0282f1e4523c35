// The spam check of a received message: rules on a worker thread, DNS lists through the resolver, X-Spam-* fields.
#include "mta/smtpd/spam_check.hpp"

#include <arpa/inet.h>

#include <fstream>
#include <sstream>

#include "common/base/log.hpp"
#include "common/event/event.hpp"
#include "common/verify/spam_score.hpp"
#include "mta/smtpd/rspamd_client.hpp"
#include "mta/smtpd/scanner_socket.hpp"
#include "mta/smtpd/spamd_client.hpp"

namespace ferry::smtpd {

namespace spam = verify::spam;

namespace {

Result<std::optional<double>> score_key(const Config& config, const char* key, bool may_be_empty) {
    std::string v = config.str(key);
    if (v.empty() && may_be_empty) return std::optional<double>();
    double d = 0;
    if (!spam::parse_score(v, d)) return make_error(0, "", std::string(key) + ": not a number: \"" + v + "\"");
    return std::optional<double>(d);
}

Result<spam::RuleSet> load_rules(const std::string& path) {
    if (path.empty()) return spam::builtin_rules();
    std::ifstream in(path, std::ios::binary);
    if (!in) return make_error(0, "", "spam_rules_file: cannot read " + path);
    std::ostringstream text;
    text << in.rdbuf();
    auto r = spam::parse_rules(text.str(), spam::builtin_rules());
    if (!r) return make_error(0, "", "spam_rules_file: " + path + ": " + r.error().what());
    return r;
}

// Up to `max` octets of the message, from the spool file (on a worker thread).
std::string read_prefix(const spool::MessageData& data, size_t max, std::string& error) {
    std::string out(std::min<uint64_t>(max, data.length), '\0');
    size_t have = 0;
    while (have < out.size()) {
        auto n = data.read(have, out.data() + have, out.size() - have);
        if (!n) {
            error = n.error().what();
            break;
        }
        if (n.value() == 0) break;
        have += n.value();
    }
    out.resize(have);
    return out;
}

// "X-Spam-Status: ..." folded before a word or after a comma of the test list, within 78 columns where names allow.
std::string status_field(const std::string& value) {
    std::string out = "X-Spam-Status:";
    size_t col = out.size();
    auto put = [&](std::string_view piece, bool space) {
        if (col + piece.size() + (space ? 1 : 0) > 78 && col > 8) {
            out += "\n\t";
            col = 8;
        } else if (space) {
            out += ' ';
            ++col;
        }
        out.append(piece);
        col += piece.size();
    };
    std::string_view v = value;
    while (!v.empty()) {
        size_t sp = v.find(' ');
        std::string_view w = v.substr(0, sp);
        v.remove_prefix(sp == std::string_view::npos ? v.size() : sp + 1);
        bool space = true;
        while (!w.empty()) {
            size_t comma = w.find(',');
            std::string_view piece = w.substr(0, comma == std::string_view::npos ? w.size() : comma + 1);
            w.remove_prefix(piece.size());
            put(piece, space);
            space = false;
        }
    }
    return out + "\n";
}

// One message's check: the worker's rule score and each DNS list's answer, joined on the loop.
struct State {
    std::shared_ptr<const CheckedMessage> m;
    MessageCheck::Done done;
    std::shared_ptr<const SpamSettings> shared;  // shared with the worker's job, which may outlast the check
    const SpamSettings& settings;
    spam::Facts facts;
    spam::Report report;
    size_t pending = 0;
    bool over = false;  // answered, or the run was dropped

    State(std::shared_ptr<const CheckedMessage> msg, MessageCheck::Done d, std::shared_ptr<const SpamSettings> s)
        : m(std::move(msg)), done(std::move(d)), shared(std::move(s)), settings(*shared) {}

    void one_done() {
        if (--pending > 0 || over) return;
        finish();
    }

    // With every answer in, or at spam_timeout with those that came (the rest count as nothing).
    void finish() {
        over = true;
        spam::Report r = std::move(report);
        spam::add_facts(settings.rules, facts, r);
        std::string status = spam::status_value(r, settings.junk_score);
        log::info("%s: %s: spam: %s", m->session.c_str(), m->id.c_str(), status.c_str());
        Finding f;
        f.fields = "X-Spam-Score: " + spam::format_score(r.score) + "\n" + status_field(status);
        if (settings.reject_score && r.score >= *settings.reject_score)
            f.refusal = make_error(550, "5.7.1", "Message refused as spam",
                                   "score " + spam::format_score(r.score) + " >= spam_reject_score");
        auto d = std::move(done);
        d(std::move(f));  // may drop the run: nothing after this line
    }
};

class SpamRun : public CheckRun {
public:
    SpamRun(WorkerPool& pool, std::shared_ptr<State> state) : pool_(pool), state_(std::move(state)) {}
    ~SpamRun() override {
        state_->over = true;
        for (auto job : jobs_) pool_.cancel(job);
    }
    void add_job(WorkerPool::JobId id) { jobs_.push_back(id); }
    // At spam_timeout the check ends with what it has: a regex that backtracks for ever keeps its
    // worker thread, never the session.
    void bound(event_base* base, double seconds) {
        deadline_.reset(evtimer_new(
            base,
            [](evutil_socket_t, short, void* arg) noexcept {
                auto state = static_cast<SpamRun*>(arg)->state_;  // the run may go inside finish
                if (state->over) return;
                log::warnx("%s: %s: spam: no score after spam_timeout, %zu check(s) unanswered: scored without them",
                           state->m->session.c_str(), state->m->id.c_str(), state->pending);
                state->finish();
            },
            this));
        timeval tv = to_timeval(seconds);
        evtimer_add(deadline_.get(), &tv);
    }

    // Answers with no finding on the next turn of the loop.
    void kick(event_base* base) {
        kick_.reset(evtimer_new(
            base,
            [](evutil_socket_t, short, void* arg) noexcept {
                auto state = static_cast<SpamRun*>(arg)->state_;  // the run may go inside done
                if (state->over) return;
                state->over = true;
                auto d = std::move(state->done);
                d(Finding{});
            },
            this));
        timeval now{0, 0};
        evtimer_add(kick_.get(), &now);
    }

private:
    WorkerPool& pool_;
    std::shared_ptr<State> state_;
    std::vector<WorkerPool::JobId> jobs_;
    EventPtr kick_;
    EventPtr deadline_;
};

class SpamCheck : public MessageCheck {
public:
    SpamCheck(event_base* base, WorkerPool& pool, dns::Resolver* resolver, SpamSettings settings)
        : base_(base), pool_(pool), resolver_(resolver),
          settings_(std::make_shared<const SpamSettings>(std::move(settings))) {}

    const char* name() const override { return "spam"; }

    std::unique_ptr<CheckRun> start(std::shared_ptr<const CheckedMessage> m, Done done) override {
        if (m->relay_client && !settings_->score_relay_clients) return skip(std::move(done));
        auto state = std::make_shared<State>(m, std::move(done), settings_);
        if (m->spf) state->facts.spf = verify::spf::result_name(m->spf->result);
        auto run = std::make_unique<SpamRun>(pool_, state);
        bool spamd = !settings_->spamd_address.empty(), rspamd = !settings_->rspamd_address.empty();
        state->pending = 1 + (resolver_ ? settings_->lists.size() : 0) + (spamd ? 1 : 0) + (rspamd ? 1 : 0);
        if (resolver_) ask_lists(state);
        run->add_job(score_text(state));
        if (spamd) run->add_job(ask_spamd(state));
        if (rspamd) run->add_job(ask_rspamd(state));
        run->bound(base_, settings_->timeout);
        return run;
    }

private:
    // Mail of our own users: no score, no fields; `done` still runs later, from the loop.
    std::unique_ptr<CheckRun> skip(Done done) {
        auto run = std::make_unique<SpamRun>(pool_, std::make_shared<State>(nullptr, std::move(done), settings_));
        run->kick(base_);
        return run;
    }

    WorkerPool::JobId score_text(const std::shared_ptr<State>& state) {
        auto out = std::make_shared<spam::Report>();
        auto error = std::make_shared<std::string>();
        std::weak_ptr<State> weak = state;
        auto m = state->m;
        auto settings = settings_;
        return pool_.submit(
            [m, out, error, settings] {
                std::string text = read_prefix(m->data, settings->max_bytes, *error);
                *out = spam::score(settings->rules, text, {}, {settings->max_bytes});
            },
            [weak, out, error] {
                auto s = weak.lock();
                if (!s || s->over) return;
                if (!error->empty())
                    log::warnx("%s: %s: spam: message not read, text rules skipped: %s", s->m->session.c_str(),
                               s->m->id.c_str(), error->c_str());
                if (out->rule_errors)
                    log::warnx("%s: %s: spam: %zu regex match(es) abandoned as too complex", s->m->session.c_str(),
                               s->m->id.c_str(), out->rule_errors);
                s->report = std::move(*out);
                s->one_done();
            });
    }

    // spamd's score joins ours as the test SPAMD; a spamd that cannot say counts nothing (logged).
    WorkerPool::JobId ask_spamd(const std::shared_ptr<State>& state) {
        auto answer = std::make_shared<SpamdAnswer>();
        std::weak_ptr<State> weak = state;
        double deadline = now() + settings_->spamd_timeout;
        return pool_.submit(
            [m = state->m, answer, settings = settings_, deadline] {
                *answer = spamd_check(settings->spamd_address, m->data, settings->max_bytes, deadline);
            },
            [weak, answer] {
                auto s = weak.lock();
                if (!s || s->over) return;
                if (answer->score) s->facts.lists.push_back({"SPAMD", *answer->score});
                else
                    log::warnx("%s: %s: spam: spamd: %s, counted as nothing", s->m->session.c_str(), s->m->id.c_str(),
                               answer->error.c_str());
                s->one_done();
            });
    }

    // rspamd's score joins ours as the test RSPAMD, like spamd's; one that cannot say counts nothing (logged).
    WorkerPool::JobId ask_rspamd(const std::shared_ptr<State>& state) {
        auto answer = std::make_shared<RspamdAnswer>();
        std::weak_ptr<State> weak = state;
        double deadline = now() + settings_->rspamd_timeout;
        const CheckedMessage& msg = *state->m;
        RspamdEnvelope e{msg.id, msg.client, msg.helo, msg.sender, msg.recipients, msg.auth_user};
        return pool_.submit(
            [m = state->m, e = std::move(e), answer, settings = settings_, deadline] {
                *answer = rspamd_check(settings->rspamd_address, e, m->data, settings->max_bytes, deadline);
            },
            [weak, answer] {
                auto s = weak.lock();
                if (!s || s->over) return;
                if (!answer->reply) {
                    log::warnx("%s: %s: spam: rspamd: %s, counted as nothing", s->m->session.c_str(), s->m->id.c_str(),
                               answer->error.c_str());
                } else if (answer->reply->skipped) {
                    log::info("%s: %s: spam: rspamd skipped the message, counted as nothing", s->m->session.c_str(),
                              s->m->id.c_str());
                } else {
                    const auto& r = *answer->reply;
                    log::info("%s: %s: spam: rspamd: score=%s required=%s action=\"%s\" symbols=%zu", s->m->session.c_str(),
                              s->m->id.c_str(), spam::format_score(r.score).c_str(),
                              spam::format_score(r.required_score).c_str(), r.action.c_str(), r.symbols.size());
                    s->facts.lists.push_back({"RSPAMD", r.score});
                }
                s->one_done();
            });
    }

    void ask_lists(const std::shared_ptr<State>& state) {
        std::string rev = reversed_ip(state->m->client);
        for (const auto& list : settings_->lists) {
            std::weak_ptr<State> weak = state;
            if (rev.empty()) {  // not an address we can ask about: nothing to count
                --state->pending;
                continue;
            }
            std::string name = rev + "." + list.zone;
            resolver_->addresses(name, [weak, list, name](dns::AddressAnswer a) { listed(weak, list, name, a); });
        }
    }

    // RFC 5782 2.3: an A record in 127.0.0.0/8 says listed; we count 127.0.0.x only (Spamhaus answers
    // 127.255.255.x for refused queries).
    static void listed(const std::weak_ptr<State>& weak, const DnsList& list, const std::string& name,
                       const dns::AddressAnswer& a) {
        auto s = weak.lock();
        if (!s || s->over) return;
        if (a.status == dns::Status::temporary)
            log::warnx("%s: %s: spam: DNS list %s: no answer for %s, counted as not listed: %s", s->m->session.c_str(),
                       s->m->id.c_str(), list.zone.c_str(), name.c_str(), a.error.c_str());
        bool hit = false;
        for (const auto& addr : a.addresses) hit = hit || addr.rfind("127.0.0.", 0) == 0;
        if (a.status == dns::Status::ok && hit)
            s->facts.lists.push_back({(list.weight >= 0 ? "DNSBL_" : "DNSWL_") + list.zone, list.weight});
        s->one_done();
    }

    event_base* base_;
    WorkerPool& pool_;
    dns::Resolver* resolver_;
    std::shared_ptr<const SpamSettings> settings_;
};

}  // namespace

Result<std::vector<DnsList>> parse_dns_lists(const std::vector<std::string>& items) {
    std::vector<DnsList> out;
    for (const auto& item : items) {
        size_t colon = item.rfind(':');
        DnsList l;
        l.zone = item.substr(0, colon);
        while (!l.zone.empty() && l.zone.back() == '.') l.zone.pop_back();
        bool ok = colon != std::string::npos && !l.zone.empty() && l.zone.size() <= 200 &&
                  spam::parse_score(std::string_view(item).substr(colon + 1), l.weight);
        for (char c : l.zone) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_');
        if (!ok) return make_error(0, "", "spam_dnsbl_zones: \"" + item + "\" is not zone:weight (zen.example:3.5)");
        out.push_back(std::move(l));
    }
    return out;
}

Result<SpamSettings> spam_settings(const Config& config) {
    SpamSettings s;
    auto rules = load_rules(config.str("spam_rules_file"));
    if (!rules) return rules.error();
    s.rules = std::move(rules.value());
    s.max_bytes = std::max<size_t>(1024, config.size("spam_max_body_bytes"));
    auto junk = score_key(config, "spam_junk_score", false);
    if (!junk) return junk.error();
    s.junk_score = **junk;
    auto reject = score_key(config, "spam_reject_score", true);
    if (!reject) return reject.error();
    s.reject_score = *reject;
    auto lists = parse_dns_lists(config.list("spam_dnsbl_zones"));
    if (!lists) return lists.error();
    s.lists = std::move(lists.value());
    s.score_relay_clients = config.boolean("spam_score_relay_clients");
    s.timeout = std::max(1.0, static_cast<double>(config.duration("spam_timeout").count()));
    s.spamd_address = config.str("spamd_address");
    s.spamd_timeout = std::max(1.0, static_cast<double>(config.duration("spamd_timeout").count()));
    s.rspamd_address = config.str("rspamd_address");
    s.rspamd_timeout = std::max(1.0, static_cast<double>(config.duration("rspamd_timeout").count()));
    return s;
}

std::string reversed_ip(const std::string& ip) {
    unsigned char b[16];
    std::string a = ip.rfind("::ffff:", 0) == 0 && ip.find('.') != std::string::npos ? ip.substr(7) : ip;
    if (inet_pton(AF_INET, a.c_str(), b) == 1)
        return std::to_string(b[3]) + "." + std::to_string(b[2]) + "." + std::to_string(b[1]) + "." + std::to_string(b[0]);
    if (inet_pton(AF_INET6, a.c_str(), b) != 1) return "";
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (int i = 15; i >= 0; --i) {
        out += hex[b[i] & 15];
        out += '.';
        out += hex[b[i] >> 4];
        if (i) out += '.';
    }
    return out;
}

std::unique_ptr<MessageCheck> make_spam_check(event_base* base, WorkerPool& pool, dns::Resolver* resolver,
                                              SpamSettings settings) {
    return std::make_unique<SpamCheck>(base, pool, resolver, std::move(settings));
}

}  // namespace ferry::smtpd
