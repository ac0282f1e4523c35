// Group sync: requests numbered by the sync that will answer them.
#include "common/base/group_sync.hpp"

#include <utility>

#include "common/base/fs.hpp"

namespace ferry {

GroupSync::GroupSync(Sync sync) : sync_(std::move(sync)), thread_([this] { run(); }) {}

GroupSync::Sync GroupSync::directory(std::string dir) {
    return [dir = std::move(dir)] { return fsync_dir(dir); };
}

GroupSync::~GroupSync() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    asked_.notify_all();
    thread_.join();
}

// The sync running now may have begun before the caller's change: the next one answers it.
uint64_t GroupSync::request() {
    uint64_t ticket;
    {
        std::lock_guard lock(mu_);
        ticket = started_ + 1;
        requested_ = ticket;
    }
    asked_.notify_one();
    return ticket;
}

// Sync number `ticket` answers; a later one that failed makes the answer a failure too (after a
// failed fsync the kernel may have dropped the dirty pages, so a later success proves nothing).
Result<void> GroupSync::wait(uint64_t ticket) {
    std::unique_lock lock(mu_);
    answered_.wait(lock, [&] { return finished_ >= ticket; });
    if (failed_ >= ticket) return failure_;
    return {};
}

uint64_t GroupSync::syncs() const {
    std::lock_guard lock(mu_);
    return started_;
}

void GroupSync::run() {
    std::unique_lock lock(mu_);
    for (;;) {
        asked_.wait(lock, [&] { return requested_ > started_ || stopping_; });
        if (requested_ <= started_) return;  // stopping, and nothing left to answer
        uint64_t number = ++started_;
        lock.unlock();
        Result<void> r = sync_();
        lock.lock();
        finished_ = number;
        if (!r) {
            failed_ = number;
            failure_ = std::move(r);
        }
        // Woken after the unlock, a waiter takes the mutex at once instead of blocking on it again.
        lock.unlock();
        answered_.notify_all();
        lock.lock();
    }
}

}  // namespace ferry
