// The greylisting check of ferry-smtpd: the last of the checks, it defers a message whose triplets are new with 451 4.7.1.
#include "mta/smtpd/greylist_check.hpp"

#include <algorithm>
#include <ctime>

#include "common/base/log.hpp"

namespace ferry::smtpd {

namespace {

// One log line per triplet; the refusal when any of them waits.
Finding answer(const CheckedMessage& m, const std::string& block, const std::vector<std::string>& rcpts,
               const std::vector<GreylistVerdict>& verdicts) {
    int64_t wait = 0;
    for (size_t i = 0; i < verdicts.size(); ++i) {
        const auto& v = verdicts[i];
        if (v.pass)
            log::info("%s: %s: greylist: passed [%s] from=<%s> to=<%s>: %s", m.session.c_str(), m.id.c_str(),
                      block.c_str(), m.sender.c_str(), rcpts[i].c_str(), v.reason.c_str());
        else
            log::info("%s: %s: greylist: deferred [%s] from=<%s> to=<%s>: %s, retry in %llds", m.session.c_str(),
                      m.id.c_str(), block.c_str(), m.sender.c_str(), rcpts[i].c_str(), v.reason.c_str(),
                      static_cast<long long>(v.wait));
        if (!v.pass) wait = std::max(wait, v.wait);
    }
    Finding f;
    if (wait > 0)
        f.refusal = make_error(451, "4.7.1", "Greylisted, try again in " + std::to_string(wait) + " seconds",
                               "greylisted");
    return f;
}

}  // namespace

GreylistCheck::GreylistCheck(WorkerPool& pool, GreylistSettings settings)
    : pool_(pool), settings_(std::make_shared<const GreylistSettings>(std::move(settings))),
      db_(std::make_shared<const GreylistDb>(settings_->db_path, settings_->times, settings_->max_entries)) {}

std::unique_ptr<CheckRun> GreylistCheck::pass(Done done) {
    auto alive = std::make_shared<bool>(true);
    pool_.submit([] {}, [alive, done = std::move(done)] {
        if (*alive) done(Finding{});
    });
    return std::make_unique<FlagRun>(alive);
}

std::unique_ptr<CheckRun> GreylistCheck::start(std::shared_ptr<const CheckedMessage> m, Done done) {
    std::vector<std::string> rcpts;
    for (const auto& r : m->recipients)
        if (settings_->applies(r) && std::find(rcpts.begin(), rcpts.end(), r) == rcpts.end()) rcpts.push_back(r);
    std::string block = client_block(m->client);
    // Mail of our own users, or to domains without greylisting: nothing to say.
    if (m->relay_client || rcpts.empty() || block.empty()) return pass(std::move(done));
    if (net::in_networks(settings_->networks, m->client)) {
        log::info("%s: %s: greylist: passed [%s] from=<%s>: client in greylist_networks", m->session.c_str(),
                  m->id.c_str(), m->client.c_str(), m->sender.c_str());
        return pass(std::move(done));
    }
    if (std::string why = greylist_known_good(m->found); !why.empty()) {
        log::info("%s: %s: greylist: passed [%s] from=<%s>: %s", m->session.c_str(), m->id.c_str(), m->client.c_str(),
                  m->sender.c_str(), why.c_str());
        return pass(std::move(done));
    }
    std::vector<std::string> keys;
    for (const auto& r : rcpts) keys.push_back(triplet_key(block, m->sender, r));
    auto alive = std::make_shared<bool>(true);
    auto result = std::make_shared<Result<std::vector<GreylistVerdict>>>(std::vector<GreylistVerdict>{});
    pool_.submit([db = db_, keys = std::move(keys), result] { *result = db->check(keys, std::time(nullptr)); },
                 [m, block, rcpts, result, alive, done = std::move(done)] {
                     if (!*alive) return;
                     if (!*result) {
                         log::errorx("%s: %s: greylist: database failed, message let through: %s", m->session.c_str(),
                                     m->id.c_str(), result->error().what().c_str());
                         return done(Finding{});
                     }
                     done(answer(*m, block, rcpts, **result));
                 });
    return std::make_unique<FlagRun>(alive);
}

}  // namespace ferry::smtpd
