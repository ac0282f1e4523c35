// Group fsync of one directory on a thread of its own, so that a caller can fsync a file meanwhile.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "common/base/result.hpp"

namespace ferry {

// Each request is answered by an fsync of the directory that began after it was made, so what the
// caller linked or renamed there before asking is durable when its answer is ok. One fsync answers
// every request made before it began: callers that ask while one runs share the next.
class DirectorySync {
public:
    explicit DirectorySync(std::string dir);
    // Answers what was asked, then joins the thread.
    ~DirectorySync();
    DirectorySync(const DirectorySync&) = delete;
    DirectorySync& operator=(const DirectorySync&) = delete;

    // request() returns at once; wait() blocks until an fsync that began after that request ended,
    // and gives its outcome. Any thread, any number at a time.
    uint64_t request();
    Result<void> wait(uint64_t ticket);
    Result<void> sync() { return wait(request()); }

    const std::string& dir() const { return dir_; }
    uint64_t fsyncs() const;  // fsyncs begun so far

private:
    void run();

    const std::string dir_;
    mutable std::mutex mu_;
    std::condition_variable asked_;     // the thread waits for a request or the end
    std::condition_variable answered_;  // callers wait for their fsync
    uint64_t requested_ = 0;            // guarded by mu_: the highest fsync number asked for
    uint64_t started_ = 0;              // guarded by mu_: fsyncs begun (the one running is number started_)
    uint64_t finished_ = 0;             // guarded by mu_: the number of the last fsync that ended
    Result<void> last_;                 // guarded by mu_: its outcome
    bool stopping_ = false;             // guarded by mu_
    std::thread thread_;                // last: starts once the rest is there
};

}  // namespace ferry
