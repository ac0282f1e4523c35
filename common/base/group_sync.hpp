// Group sync on a thread of its own (an fsync of a directory, an fdatasync of a log), so that a caller can fsync a file meanwhile.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/base/result.hpp"

namespace ferry {

// Each request is answered by a sync that began after it was made, so what the caller linked,
// renamed or wrote before asking is durable when its answer is ok. One sync answers every request
// made before it began: callers that ask while one runs share the next. A failed sync fails every
// request it answers, even when a sync after it succeeds (and, to be safe, those answered before it
// that look only after it failed).
class GroupSync {
public:
    using Sync = std::function<Result<void>()>;

    explicit GroupSync(Sync sync);
    // The fsync of one directory.
    static Sync directory(std::string dir);
    // Answers what was asked, then joins the thread.
    ~GroupSync();
    GroupSync(const GroupSync&) = delete;
    GroupSync& operator=(const GroupSync&) = delete;

    // request() returns at once; wait() blocks until a sync that began after that request ended,
    // and gives its outcome. Any thread, any number at a time.
    uint64_t request();
    Result<void> wait(uint64_t ticket);
    Result<void> sync() { return wait(request()); }

    uint64_t syncs() const;  // syncs begun so far

private:
    void run();

    const Sync sync_;
    mutable std::mutex mu_;
    std::condition_variable asked_;     // the thread waits for a request or the end
    std::condition_variable answered_;  // callers wait for their sync
    uint64_t requested_ = 0;            // guarded by mu_: the highest sync number asked for
    uint64_t started_ = 0;              // guarded by mu_: syncs begun (the one running is number started_)
    uint64_t finished_ = 0;             // guarded by mu_: the number of the last sync that ended
    uint64_t failed_ = 0;               // guarded by mu_: the number of the last sync that failed
    Result<void> failure_;              // guarded by mu_: its outcome
    bool stopping_ = false;             // guarded by mu_
    std::thread thread_;                // last: starts once the rest is there
};

}  // namespace ferry
