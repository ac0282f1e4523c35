// Group commit: files made durable off the event loop, their directory fsync'd once per batch.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/event/worker_pool.hpp"

namespace ferry {

// Each item (a queue file, a Maildir message) goes through three steps on worker threads:
//   sync     its own data to disk, beside other items' syncs (concurrent fsyncs on one file system
//            share the journal's commits);
//   publish  once synced, in batch order: link or rename it into place; names the directory whose
//            fsync makes that durable;
//   settle   after the batch's directory fsyncs: the final result (unlink the old name, or undo the
//            publish when the directory fsync failed).
// and then `done` runs on the loop with that result. A batch is whatever has synced by the time the
// previous batch is over: it never waits for more work than it finds ready, so a lone item costs
// only its own fsyncs. Every directory named in a batch is fsync'd once for the whole batch.
class CommitStage {
public:
    struct Item {
        std::function<Result<void>()> sync;
        // Returns the directory to fsync ("" when none); an error skips settle.
        std::function<Result<std::string>()> publish;
        // Gets the outcome of its directory's fsync (ok when it named none); empty: the result is `dir`.
        std::function<Result<void>(const Result<void>& dir)> settle;
        // On the loop, exactly once per item (unless the stage is destroyed before). It must cope
        // with its requester being gone (a session closed meanwhile): the outcome stands anyway.
        std::function<void(Result<void>)> done;
    };
    struct Stats {
        uint64_t items = 0;      // items finished (done called)
        uint64_t batches = 0;    // publish batches run
        uint64_t dir_syncs = 0;  // directory fsyncs issued
    };

    // `threads` workers (at least 1) run the syncs; the batch runs on one of them.
    CommitStage(event_base* base, int threads);
    ~CommitStage();
    CommitStage(const CommitStage&) = delete;
    CommitStage& operator=(const CommitStage&) = delete;

    void submit(Item item);
    // Items submitted whose done has not run yet.
    size_t pending() const { return pending_; }
    // Items synced and waiting for the next batch (the current one is still running).
    size_t ready() const {
        std::lock_guard lock(mu_);
        return synced_.size();
    }
    const Stats& stats() const { return stats_; }

private:
    struct Batch;
    void on_synced(std::shared_ptr<Item> item, Result<void> r);
    void start_batch();
    static void run_batch(Batch& batch);
    void finish_batch(Batch& batch);

    WorkerPool pool_;
    // The loop adds to synced_ and starts batches; a worker whose item synced while neither a batch
    // runs nor anything waits takes the batch itself (submit()).
    mutable std::mutex mu_;
    std::vector<std::shared_ptr<Item>> synced_;  // guarded by mu_: waiting for the next batch
    bool batch_running_ = false;                 // guarded by mu_
    size_t pending_ = 0;
    Stats stats_;
};

}  // namespace ferry
