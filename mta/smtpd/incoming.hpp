// One message arriving by DATA or BDAT: the DATA reader feeding a spool Writer, never the whole message in memory.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "common/spool/spool.hpp"
#include "common/verify/forged_fields.hpp"

namespace ferry::smtpd {

class Incoming {
public:
    // Creates incoming/<id> with the envelope (env.id is filled in).
    // `framing`: chunked for BDAT (RFC 3030), whose data is fed without dot-stuffing or end marker.
    static Result<Incoming> start(const std::string& spool_dir, spool::Envelope& env, const smtp::DataLimits& limits,
                                  smtp::DataReader::Framing framing = smtp::DataReader::Framing::dot);

    const std::string& id() const { return id_; }
    // Bytes put before the message itself: the Received: header.
    Result<void> prepend(std::string_view header);
    // From now on, Authentication-Results: fields of the message naming `authserv_id` are dropped.
    void drop_forged_results(const std::string& authserv_id) { filter_.emplace(authserv_id); }
    // How many were dropped so far.
    size_t forged_results() const { return filter_ ? filter_->dropped() : 0; }
    // How many X-Spam-* fields were dropped (the same filter drops them).
    size_t forged_spam_fields() const { return filter_ ? filter_->spam_dropped() : 0; }
    size_t forged_virus_marks() const { return filter_ ? filter_->virus_dropped() : 0; }
    // Feeds bytes that follow "354". Message bytes go to the spool file in pieces of at most
    // kFlushSize; after the reader reports an error, or a write fails, the file is dropped and
    // the rest is only consumed.
    smtp::DataReader::Step feed(std::string_view bytes);
    // BDAT LAST: the last chunk is in (a final bare CR is an error).
    void end_chunks() { reader_.end_chunks(); }
    // Once feed returned done (or after end_chunks): the error to reply, if the message is refused.
    std::optional<Error> error() const;
    // Writes what is left and hands over the spool Writer, whose commit (spool.hpp: sync, publish,
    // settle) the caller runs; the reply as an error when the message is refused (the file is gone then).
    Result<spool::Writer> finish();
    // The reply to a commit that failed: 451, try again later.
    static Error commit_failure(const Error& e);
    void discard();
    // Message size as RFC 1870 counts it (CRLF line ends), without the Received: header.
    uint64_t size() const { return reader_.size(); }

    static constexpr size_t kFlushSize = 64 * 1024;

private:
    Incoming(spool::Writer writer, const smtp::DataLimits& limits, smtp::DataReader::Framing framing);
    void write_out();

    std::optional<spool::Writer> writer_;  // empty once discarded
    smtp::DataReader reader_;
    std::string id_;
    std::string pending_;                  // reader output not yet written
    std::optional<verify::ForgedResultsFilter> filter_;
    std::string raw_;                      // reader output before the filter
    std::optional<Error> disk_error_;
};

}  // namespace ferry::smtpd
