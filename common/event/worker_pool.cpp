// A fixed pool of worker threads for work that would block the loop, completions back on the loop.
#include "common/event/worker_pool.hpp"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/base/log.hpp"

namespace ferry {

WorkerPool::WorkerPool(event_base* base, int threads) {
    wake_fd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_fd_.valid()) log::panic("worker pool: eventfd: %s", std::strerror(errno));
    wake_ev_.reset(event_new(base, wake_fd_.get(), EV_READ | EV_PERSIST, on_wake, this));
    event_add(wake_ev_.get(), nullptr);
    // Threads inherit the mask they are created with: block everything around their creation.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < (threads < 1 ? 1 : threads); ++i) threads_.emplace_back([this] { run_worker(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

WorkerPool::~WorkerPool() {
    std::deque<Job> dropped;
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
        dropped.swap(queue_);
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    wake_ev_.reset();
    finished_.clear();
}

WorkerPool::JobId WorkerPool::submit(Work work, Work done) {
    JobId id;
    {
        std::lock_guard lock(mu_);
        id = next_id_++;
        queue_.push_back({id, std::move(work), std::move(done)});
    }
    cv_.notify_one();
    return id;
}

bool WorkerPool::cancel(JobId id) {
    Job job;  // destroyed after the lock is released: its captures may be heavy
    std::lock_guard lock(mu_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
        if (it->id != id) continue;
        job = std::move(*it);
        queue_.erase(it);
        return true;
    }
    return false;
}

size_t WorkerPool::queued() const {
    std::lock_guard lock(mu_);
    return queue_.size();
}

void WorkerPool::run_worker() {
    for (;;) {
        Job job;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            job = std::move(queue_.front());
            queue_.pop_front();
        }
        job.work();
        job.work = nullptr;
        {
            std::lock_guard lock(mu_);
            if (stopping_) return;
            finished_.push_back(std::move(job.done));
        }
        uint64_t one = 1;
        ssize_t rc = ::write(wake_fd_.get(), &one, sizeof one);
        (void)rc;  // a counter of 2^64 - 1 cannot fill from a few writes; the loop drains finished_ anyway
    }
}

void WorkerPool::on_wake(evutil_socket_t fd, short, void* arg) noexcept {
    auto* pool = static_cast<WorkerPool*>(arg);
    uint64_t count;
    ssize_t rc = ::read(fd, &count, sizeof count);
    (void)rc;
    std::vector<Work> batch;
    {
        std::lock_guard lock(pool->mu_);
        batch.swap(pool->finished_);
    }
    for (auto& done : batch)
        if (done) done();
}

}  // namespace ferry
