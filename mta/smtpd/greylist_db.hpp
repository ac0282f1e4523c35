// The greylisting database: triplet records in a Berkeley DB btree under greylist_db, shared by every ferry-smtpd process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "mta/smtpd/greylist.hpp"

namespace ferry::smtpd {

// The file holds "t:<block>\t<sender>\t<recipient>" -> encode_greylist_entry(), and one record
// "m:state" -> "1\t<last prune>\t<records at that prune>\t<records added since>" (ferry-smtpd(8),
// GREYLISTING). Each call takes an flock on "<path>.lock" (released by the kernel when a holder
// dies, so a killed process never blocks the next), opens the btree, works and closes it before
// unlocking: processes never share a cached page. Nothing is fsynced: a record lost in a power
// cut only makes a sender retry once more. A file Berkeley DB cannot read is moved to
// "<path>.corrupt" and a new one started. Blocking: call it from a worker thread.
class GreylistDb {
public:
    // How long a call waits for the lock before it gives up with an error.
    static constexpr int kLockWaitMs = 10000;
    // Pruning runs at most this often, and also whenever the records may exceed max_entries.
    static constexpr int64_t kPruneEvery = 3600;

    GreylistDb(std::string path, GreylistTimes times, size_t max_entries)
        : path_(std::move(path)), times_(times), max_entries_(max_entries) {}

    // The verdict for each key (triplet_key()) at `now`, each record written back as it changed.
    Result<std::vector<GreylistVerdict>> check(const std::vector<std::string>& keys, int64_t now) const;
    // Drops the records that outlived their time, then (when more than max_entries are left) the
    // waiting ones first seen earliest, then the passed ones seen last earliest; returns how many went.
    Result<size_t> prune(int64_t now) const;
    // How many triplet records the file holds (tests, ferry-smtpd(8)).
    Result<size_t> size() const;

    const std::string& path() const { return path_; }

private:
    std::string path_;
    GreylistTimes times_;
    size_t max_entries_;
};

}  // namespace ferry::smtpd
