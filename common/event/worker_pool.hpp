// A fixed pool of worker threads for work that would block the loop, completions back on the loop.
#pragma once

#include <event2/event.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/base/fd.hpp"
#include "common/event/event.hpp"

namespace ferry {

// For password hashes now, disk-heavy scans and SEARCH next (one loop per process, DESIGN.md).
// Jobs run in submission order on any of the threads; each job's completion then runs on the loop
// thread, woken through an eventfd. The workers block every signal, so the loop's signal events
// see them all. Work must not throw and must not touch loop-owned state; completions may.
class WorkerPool {
public:
    using JobId = uint64_t;
    using Work = std::function<void()>;

    // Starts `threads` workers (at least 1). Aborts when no eventfd can be made (start-up only).
    WorkerPool(event_base* base, int threads);
    // Stops and joins the workers: queued work never runs, and no completion runs any more.
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // Queues `work`; after a worker ran it, `done` runs on the loop (never inside submit). A job's
    // captured state is destroyed on whichever thread drops it last.
    JobId submit(Work work, Work done);
    // Takes a job off the queue before a worker starts it: true then, and neither its work nor its
    // completion will run. False when a worker has begun it (its completion still comes) or it is over.
    bool cancel(JobId id);
    // Jobs not yet taken by a worker.
    size_t queued() const;
    size_t threads() const { return threads_.size(); }

private:
    struct Job {
        JobId id = 0;
        Work work;
        Work done;
    };
    void run_worker();
    static void on_wake(evutil_socket_t fd, short, void* arg) noexcept;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Job> queue_;      // guarded by mu_
    std::vector<Work> finished_;  // completions to run on the loop; guarded by mu_
    bool stopping_ = false;       // guarded by mu_
    JobId next_id_ = 1;           // guarded by mu_
    Fd wake_fd_;                  // eventfd: workers -> loop
    EventPtr wake_ev_;
    std::vector<std::thread> threads_;
};

}  // namespace ferry
