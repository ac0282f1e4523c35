// The per-folder cache file beside the index (ferry-mailstore(5)): values FETCH and SEARCH compute once, read lazily.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry::store {

inline constexpr const char* kCacheFile = "ferry-cache";
inline constexpr const char* kCacheTempFile = "ferry-cache.tmp";

struct CacheValue {
    uint32_t uid = 0;
    std::string key;           // at most kMaxKeyLength bytes
    std::string value;         // opaque
    uint32_t uidvalidity = 0;  // the UIDVALIDITY `uid` belongs to; 0: the index's current one
};

// One process's view of a folder's cache file: an H record (the index's UIDVALIDITY) then C records
// in the index's framing. Loading it reads only the frames (where each value is); a value's
// checksum is checked when it is read. Everything wrong with the file only loses values, which
// are computed again: nothing here is fsynced. The Index owns one and holds its lock for writes.
class CacheFile {
public:
    explicit CacheFile(std::string maildir) : maildir_(std::move(maildir)) {}

    // Reads the frames appended since the last call (the whole file after a replacement). A file of
    // another UIDVALIDITY reads as empty. A `writer` (holding the index lock exclusively) cuts a torn
    // or damaged tail, and replaces a file of another UIDVALIDITY with an empty one.
    Result<void> catch_up(uint32_t uidvalidity, bool writer);
    // The value, when a whole record with a good checksum holds it.
    std::optional<std::string> get(uint32_t uid, std::string_view key);
    // Appends values (writer only, after catch_up(uidvalidity, true)); a later one of a key replaces it.
    Result<void> append(uint32_t uidvalidity, std::span<const CacheValue> values);
    // Rewrites the file with the values of the UIDs `live` keeps, in UID order (writer only).
    Result<void> compact(uint32_t uidvalidity, const std::function<bool(uint32_t)>& live);
    // Records in the file (the header too) and values it holds now.
    size_t records() const { return records_; }
    size_t values() const { return slots_.size(); }
    bool loaded() const { return loaded_; }

private:
    struct Slot {
        uint64_t offset = 0;
        uint32_t size = 0;
        bool checked = false;  // its checksum was good once: the file is only appended to or replaced
    };
    void reset();
    Result<void> replace(uint32_t uidvalidity, std::string_view records);
    Result<void> cut(uint64_t at);
    bool take_frame(std::string_view payload, uint64_t offset, size_t used, uint32_t uidvalidity);
    uint32_t key_id(std::string_view key);
    Result<std::string_view> bytes_at(uint64_t offset, size_t size);

    std::string maildir_;
    Fd file_;
    ino_t ino_ = 0;
    bool loaded_ = false;
    bool stale_ = false;           // a header of another UIDVALIDITY: nothing after it counts
    uint32_t uidvalidity_ = 0;     // of the header read; 0 before it
    uint64_t offset_ = 0;          // bytes of frames taken
    size_t records_ = 0;
    std::unordered_map<uint64_t, Slot> slots_;  // (uid << 32 | key id) -> where its record is
    std::vector<std::string> keys_;
    std::string window_;           // file bytes from window_at_, read ahead for the next values
    uint64_t window_at_ = 0;
};

}  // namespace ferry::store
