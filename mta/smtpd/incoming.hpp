// One message arriving by DATA: the DATA reader feeding a spool Writer, never the whole message in memory.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "common/spool/spool.hpp"

namespace ferry::smtpd {

class Incoming {
public:
    // Creates incoming/<id> with the envelope (env.id is filled in).
    static Result<Incoming> start(const std::string& spool_dir, spool::Envelope& env, const smtp::DataLimits& limits);

    const std::string& id() const { return id_; }
    // Bytes put before the message itself: the Received: header.
    Result<void> prepend(std::string_view header);
    // Feeds bytes that follow "354". Message bytes go to the spool file in pieces of at most
    // kFlushSize; after the reader reports an error, or a write fails, the file is dropped and
    // the rest is only consumed.
    smtp::DataReader::Step feed(std::string_view bytes);
    // Once feed returned done: the error to reply, if the message is refused.
    std::optional<Error> error() const;
    // Writes what is left, then commit(): fsync, link into queue/, fsync queue/ (spool.hpp).
    Result<void> commit(const std::function<void()>& linked = {});
    void discard();
    // Message size as RFC 1870 counts it (CRLF line ends), without the Received: header.
    uint64_t size() const { return reader_.size(); }

    static constexpr size_t kFlushSize = 64 * 1024;

private:
    Incoming(spool::Writer writer, const smtp::DataLimits& limits)
        : writer_(std::move(writer)), reader_(limits), id_(writer_->id()) {}
    void write_out();

    std::optional<spool::Writer> writer_;  // empty once discarded
    smtp::DataReader reader_;
    std::string id_;
    std::string pending_;                  // reader output not yet written
    std::optional<Error> disk_error_;
};

}  // namespace ferry::smtpd
