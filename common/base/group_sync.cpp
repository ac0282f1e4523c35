// Group fsync of one directory: requests numbered by the fsync that will answer them.
#include "common/base/directory_sync.hpp"

#include <utility>

#include "common/base/fs.hpp"

namespace ferry {

DirectorySync::DirectorySync(std::string dir) : dir_(std::move(dir)), thread_([this] { run(); }) {}

DirectorySync::~DirectorySync() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    asked_.notify_all();
    thread_.join();
}

// The fsync running now may have begun before the caller's link: the next one answers it.
uint64_t DirectorySync::request() {
    uint64_t ticket;
    {
        std::lock_guard lock(mu_);
        ticket = started_ + 1;
        requested_ = ticket;
    }
    asked_.notify_one();
    return ticket;
}

// A later fsync than the ticket's began after the request too, so its outcome answers it as well.
Result<void> DirectorySync::wait(uint64_t ticket) {
    std::unique_lock lock(mu_);
    answered_.wait(lock, [&] { return finished_ >= ticket; });
    return last_;
}

uint64_t DirectorySync::fsyncs() const {
    std::lock_guard lock(mu_);
    return started_;
}

void DirectorySync::run() {
    std::unique_lock lock(mu_);
    for (;;) {
        asked_.wait(lock, [&] { return requested_ > started_ || stopping_; });
        if (requested_ <= started_) return;  // stopping, and nothing left to answer
        uint64_t number = ++started_;
        lock.unlock();
        Result<void> r = fsync_dir(dir_);
        lock.lock();
        finished_ = number;
        last_ = std::move(r);
        answered_.notify_all();
    }
}

}  // namespace ferry
