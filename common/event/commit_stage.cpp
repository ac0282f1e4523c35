// Group commit: files made durable off the event loop, their directory fsync'd once per batch.
#include "common/event/commit_stage.hpp"

#include <map>
#include <utility>

#include "common/base/fs.hpp"
#include "common/base/log.hpp"

namespace ferry {

struct CommitStage::Batch {
    std::vector<std::shared_ptr<Item>> items;
    std::vector<Result<void>> results;  // per item, filled on the worker
    uint64_t dir_syncs = 0;
};

CommitStage::CommitStage(event_base* base, int threads) : pool_(base, threads < 1 ? 1 : threads) {}

CommitStage::~CommitStage() = default;

void CommitStage::submit(Item item) {
    ++pending_;
    auto shared = std::make_shared<Item>(std::move(item));
    auto result = std::make_shared<Result<void>>();
    auto inline_batch = std::make_shared<std::shared_ptr<Batch>>();
    pool_.submit(
        [this, shared, result, inline_batch] {
            *result = shared->sync ? shared->sync() : Result<void>();
            if (!*result) return;
            // Nothing else is ready and no batch runs: this item is the next batch, run here at once
            // rather than after a trip through the loop (a lone session's commit, one thread hop less).
            {
                std::lock_guard lock(mu_);
                if (batch_running_ || !synced_.empty()) return;
                batch_running_ = true;
            }
            *inline_batch = std::make_shared<Batch>();
            (*inline_batch)->items.push_back(shared);
            run_batch(**inline_batch);
        },
        [this, shared, result, inline_batch] {
            if (*inline_batch) return finish_batch(**inline_batch);
            on_synced(shared, std::move(*result));
        });
}

void CommitStage::on_synced(std::shared_ptr<Item> item, Result<void> r) {
    if (!r) {
        --pending_;
        ++stats_.items;
        if (item->done) item->done(std::move(r));
        return;
    }
    std::lock_guard lock(mu_);
    synced_.push_back(std::move(item));
    if (!batch_running_) start_batch();
}

// With mu_ held.
void CommitStage::start_batch() {
    if (synced_.empty()) return;
    batch_running_ = true;
    auto batch = std::make_shared<Batch>();
    batch->items.swap(synced_);
    pool_.submit([batch] { run_batch(*batch); }, [this, batch] { finish_batch(*batch); });
}

// Publish in order, then one fsync per directory, then settle each with its directory's outcome.
void CommitStage::run_batch(Batch& batch) {
    std::vector<std::string> dirs(batch.items.size());
    batch.results.resize(batch.items.size());
    std::map<std::string, Result<void>> synced_dirs;
    for (size_t i = 0; i < batch.items.size(); ++i) {
        auto& item = *batch.items[i];
        if (!item.publish) continue;
        auto published = item.publish();
        if (!published) {
            batch.results[i] = published.error();
            continue;
        }
        dirs[i] = std::move(*published);
        if (!dirs[i].empty()) synced_dirs.emplace(dirs[i], Result<void>());
    }
    for (auto& [dir, outcome] : synced_dirs) {
        outcome = fsync_dir(dir);
        ++batch.dir_syncs;
    }
    for (size_t i = 0; i < batch.items.size(); ++i) {
        if (!batch.results[i]) continue;
        Result<void> dir = dirs[i].empty() ? Result<void>() : synced_dirs[dirs[i]];
        auto& item = *batch.items[i];
        batch.results[i] = item.settle ? item.settle(dir) : dir;
    }
}

void CommitStage::finish_batch(Batch& batch) {
    ++stats_.batches;
    stats_.dir_syncs += batch.dir_syncs;
    log::debug("commit batch: %zu items, %llu directory fsyncs", batch.items.size(),
               static_cast<unsigned long long>(batch.dir_syncs));
    for (size_t i = 0; i < batch.items.size(); ++i) {
        --pending_;
        ++stats_.items;
        if (batch.items[i]->done) batch.items[i]->done(std::move(batch.results[i]));
    }
    std::lock_guard lock(mu_);
    batch_running_ = false;
    start_batch();
}

}  // namespace ferry
