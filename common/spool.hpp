// The queue file: a self-describing record of one accepted message, written by smtpd, owned by qmgr.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.hpp"
#include "common/result.hpp"

namespace ferry::spool {

// On-disk layout under spool_dir (see ferry-spool(5)):
//   incoming/<id>   being received; never delivered; removed at qmgr start
//   queue/<id>      committed: fsync'd and renamed, the message is accepted
inline constexpr const char* kIncoming = "incoming";
inline constexpr const char* kQueue = "queue";
inline constexpr const char* kMagic = "ferry-queue 1";

struct Envelope {
    std::string id;
    int64_t arrival = 0;       // unix seconds
    std::string sender;        // empty for the null reverse-path <>
    std::string client;        // client address
    std::string helo;
    std::string auth;          // authenticated identity, empty when none
    std::vector<std::string> recipients;
};

struct QueuedMessage {
    Envelope envelope;
    std::string data;          // the message with LF line ends, Received: included
};

// Creates the spool's directories when missing.
Result<void> ensure_layout(const std::string& spool_dir);

// A new queue id: 16 upper-case hex characters, time-ordered.
std::string new_queue_id();

// Encodes and decodes the queue file format; decode rejects a file without its END record.
std::string encode_header(const Envelope& env);
std::string encode_trailer(uint64_t data_length);
Result<QueuedMessage> decode(std::string_view file);
Result<QueuedMessage> read_file(const std::string& path);

// Writes one message into incoming/, then commits it into queue/ with the fsyncs that make it accepted.
class Writer {
public:
    // Allocates a queue id (env.id is filled in) and writes the envelope.
    static Result<Writer> create(const std::string& spool_dir, Envelope& env);
    Writer(Writer&&) noexcept = default;
    Writer& operator=(Writer&&) noexcept = default;
    ~Writer();

    const std::string& id() const { return id_; }
    uint64_t size() const { return data_length_; }
    Result<void> append(std::string_view data);
    // trailer, fsync(file), rename into queue/, fsync(queue dir): after this returns ok the message is accepted.
    Result<void> commit();
    void discard();

private:
    Writer() = default;
    std::string spool_dir_;
    std::string id_;
    Fd fd_;
    uint64_t data_length_ = 0;
    bool done_ = false;
};

Result<void> fsync_dir(const std::string& dir);

}  // namespace ferry::spool
