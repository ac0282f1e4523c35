// A DNS answer cache around a Resolver: TTL-honouring, least-recently-used, answers posted on the loop.
#include "common/event/resolver_cache.hpp"

#include <algorithm>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>

#include "common/base/log.hpp"
#include "common/event/post.hpp"
#include "common/event/resolver_answer.hpp"

namespace ferry::dns {

namespace {

using TimePoint = std::chrono::steady_clock::time_point;
using Answer = std::variant<MxAnswer, AddressAnswer, TextAnswer>;

// The entries, shared with the callbacks in flight so that an answer arriving after the cache is
// gone has somewhere harmless to go.
class Store {
public:
    Store(CacheLimits limits, CacheClock now) : limits_(limits), now_(std::move(now)) {}

    // The answer under `key` with its remaining TTL, or nothing (an expired entry is dropped).
    std::optional<Answer> get(const std::string& key) {
        auto it = map_.find(key);
        if (it == map_.end()) return std::nullopt;
        TimePoint t = now_();
        if (t >= it->second.expires) {
            lru_.erase(it->second.lru);
            map_.erase(it);
            return std::nullopt;
        }
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        Answer a = it->second.answer;
        auto left = std::chrono::ceil<std::chrono::seconds>(it->second.expires - t).count();
        std::visit([&](auto& x) { x.ttl = static_cast<uint32_t>(left); }, a);
        return a;
    }

    // Keeps an answer that is an answer (not a failure) and may be kept (TTL above 0).
    void put(const std::string& key, Status status, uint32_t ttl, Answer a) {
        if (status != Status::ok && status != Status::nxdomain && status != Status::nodata) return;
        ttl = std::min(ttl, limits_.max_ttl);
        if (ttl == 0) return;
        TimePoint expires = now_() + std::chrono::seconds(ttl);
        if (auto it = map_.find(key); it != map_.end()) {
            it->second.answer = std::move(a);
            it->second.expires = expires;
            lru_.splice(lru_.begin(), lru_, it->second.lru);
            return;
        }
        while (map_.size() >= limits_.entries && !lru_.empty()) {
            map_.erase(lru_.back());
            lru_.pop_back();
        }
        lru_.push_front(key);
        map_.emplace(key, Entry{std::move(a), expires, lru_.begin()});
    }

private:
    struct Entry {
        Answer answer;
        TimePoint expires;
        std::list<std::string>::iterator lru;
    };
    CacheLimits limits_;
    CacheClock now_;
    std::list<std::string> lru_;  // most recently used first
    std::unordered_map<std::string, Entry> map_;
};

class CachingResolver final : public Resolver {
public:
    CachingResolver(event_base* base, std::unique_ptr<Resolver> inner, CacheLimits limits, CacheClock now)
        : base_(base), store_(std::make_shared<Store>(limits, std::move(now))), inner_(std::move(inner)) {}

    void mx(const std::string& name, std::function<void(MxAnswer)> done) override {
        lookup<MxAnswer>("mx:" + normalize_name(name), std::move(done),
                         [&](auto cb) { inner_->mx(name, std::move(cb)); });
    }
    void addresses(const std::string& name, std::function<void(AddressAnswer)> done) override {
        lookup<AddressAnswer>("addr:" + normalize_name(name), std::move(done),
                              [&](auto cb) { inner_->addresses(name, std::move(cb)); });
    }
    void txt(const std::string& name, std::function<void(TextAnswer)> done) override {
        lookup<TextAnswer>("txt:" + normalize_name(name), std::move(done),
                           [&](auto cb) { inner_->txt(name, std::move(cb)); });
    }
    void ptr(const std::string& name, std::function<void(TextAnswer)> done) override {
        lookup<TextAnswer>("ptr:" + normalize_name(name), std::move(done),
                           [&](auto cb) { inner_->ptr(name, std::move(cb)); });
    }

private:
    // A cached answer is posted to the loop; otherwise `ask` asks the inner resolver and keeps its answer.
    template <class A, class Ask>
    void lookup(std::string key, std::function<void(A)> done, Ask ask) {
        if (auto hit = store_->get(key)) {
            post(base_, [done = std::move(done), a = std::get<A>(std::move(*hit))]() mutable { done(std::move(a)); });
            return;
        }
        ask(std::function<void(A)>([store = store_, key = std::move(key), done = std::move(done)](A a) {
            store->put(key, a.status, a.ttl, a);
            done(std::move(a));
        }));
    }

    event_base* base_;
    std::shared_ptr<Store> store_;
    std::unique_ptr<Resolver> inner_;
};

}  // namespace

std::unique_ptr<Resolver> with_cache(event_base* base, std::unique_ptr<Resolver> inner, CacheLimits limits, CacheClock now) {
    if (limits.entries == 0) return inner;
    if (!now) now = [] { return std::chrono::steady_clock::now(); };
    return std::make_unique<CachingResolver>(base, std::move(inner), limits, std::move(now));
}

}  // namespace ferry::dns
