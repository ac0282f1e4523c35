// One message arriving by DATA or BDAT: the DATA reader feeding a spool Writer, never the whole message in memory.
#include "mta/smtpd/incoming.hpp"

namespace ferry::smtpd {

namespace {

Error write_failure(const Error& e) {
    return make_error(451, "4.3.0", "Error: queue file write error, try again later", e.what());
}

}  // namespace

Result<Incoming> Incoming::start(const std::string& spool_dir, spool::Envelope& env, const smtp::DataLimits& limits,
                                 smtp::DataReader::Framing framing) {
    auto writer = spool::Writer::create(spool_dir, env);
    if (!writer) return write_failure(writer.error());
    return Incoming(std::move(writer.value()), limits, framing);
}

// The pending buffer gets its room once: grown by doubling, it was copied at every step and took
// fresh pages each time (the daemons keep pieces of this size on the heap, start_program).
Incoming::Incoming(spool::Writer writer, const smtp::DataLimits& limits, smtp::DataReader::Framing framing)
    : writer_(std::move(writer)), reader_(limits, framing), id_(writer_->id()) {
    pending_.reserve(kFlushSize + 16 * 1024);
}

Result<void> Incoming::prepend(std::string_view header) {
    if (auto r = writer_->append(header); !r) return write_failure(r.error());
    return {};
}

void Incoming::write_out() {
    if (writer_ && !pending_.empty()) {
        if (auto r = writer_->append(pending_); !r) disk_error_ = write_failure(r.error());
    }
    pending_.clear();
}

smtp::DataReader::Step Incoming::feed(std::string_view bytes) {
    // The reader's output is at most its input (and a CR held from the piece before): written out
    // first, the pending buffer takes this piece without growing.
    if (pending_.size() + bytes.size() > pending_.capacity()) write_out();
    // Past the header section the filter passes everything as it is: the reader writes straight into pending_.
    bool filtering = filter_ && !filter_->in_body();
    auto step = reader_.feed(bytes, filtering ? raw_ : pending_);
    if (filtering) {
        filter_->feed(raw_, pending_);
        raw_.clear();
    }
    if (reader_.error() || disk_error_) {
        // Refused already: keep reading to the end of DATA, keep nothing.
        pending_.clear();
        discard();
    } else if (pending_.size() >= kFlushSize || step.status == smtp::DataReader::Status::done) {
        write_out();
        if (disk_error_) discard();
    }
    return step;
}

std::optional<Error> Incoming::error() const {
    if (reader_.error()) return reader_.error();
    return disk_error_;
}

Result<spool::Writer> Incoming::finish() {
    if (auto e = error()) {
        discard();
        return *e;
    }
    if (filter_) filter_->finish(pending_);
    write_out();
    if (disk_error_) {
        discard();
        return *disk_error_;
    }
    spool::Writer writer = std::move(*writer_);
    writer_.reset();
    return writer;
}

Error Incoming::commit_failure(const Error& e) { return write_failure(e); }

void Incoming::discard() {
    if (!writer_) return;
    writer_->discard();
    writer_.reset();
}

}  // namespace ferry::smtpd
