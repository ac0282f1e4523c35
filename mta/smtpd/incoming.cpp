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
    auto step = reader_.feed(bytes, filter_ ? raw_ : pending_);
    if (filter_) {
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
