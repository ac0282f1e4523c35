// One message ferry-relay was handed: its envelope, an unnamed temporary file with its data, and what the peer must support.
#include "mta/relay/message.hpp"

#include <fcntl.h>

#include "common/base/fs.hpp"
#include "common/base/log.hpp"

namespace ferry::relay {

Result<void> MessageWriter::open(const std::string& dir, const DkimSettings* dkim, const ArcSettings* arc) {
    // O_TMPFILE: nothing to clean up after a crash, the data is gone with the last descriptor.
    fd_ = Fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!fd_.valid()) return sys_error("cannot create a temporary file in " + dir);
    size_ = 0;
    eight_bit_ = false;
    in_header_ = true;
    line_start_ = true;
    eight_bit_header_ = false;
    check_ = mail::SevenBitEncoder();
    signing_ = dkim && dkim->enabled ? std::make_unique<DkimSigning>(*dkim) : nullptr;
    sealing_ = arc && arc->enabled ? std::make_unique<ArcSealing>(*arc) : nullptr;
    return {};
}

Result<void> MessageWriter::append(std::string_view chunk) {
    if (auto r = write_all(fd_.get(), chunk.data(), chunk.size()); !r) return r;
    size_ += chunk.size();
    if (signing_) signing_->feed(chunk);
    if (sealing_) sealing_->feed(chunk);
    if (!eight_bit_ && mail::has_8bit(chunk)) eight_bit_ = true;
    for (size_t i = 0; in_header_ && !eight_bit_header_ && i < chunk.size(); ++i) {
        char c = chunk[i];
        if (c == '\n' && line_start_) in_header_ = false;  // the empty line ends the header section
        if (static_cast<unsigned char>(c) > 127) eight_bit_header_ = true;
        line_start_ = c == '\n';
    }
    if (!check_.failed()) {
        scratch_.clear();
        (void)check_.feed(chunk, scratch_);
    }
    return {};
}

Result<void> MessageWriter::finish(OutboundMessage& m) {
    scratch_.clear();
    (void)check_.finish(scratch_);
    m.eight_bit = eight_bit_;
    m.eight_bit_header = eight_bit_header_;
    m.no_seven_bit = check_.error();
    m.data.fd = std::move(fd_);
    m.data.offset = 0;
    m.data.length = size_;
    m.data.late = 0;
    std::string late;
    if (sealing_) {
        std::string note;
        late = sealing_->finish(note);
        sealing_.reset();
        if (!note.empty()) log::info("%s: arc: %s", m.log_id.c_str(), note.c_str());
    }
    if (signing_) {
        std::string note;
        late += signing_->finish(note);
        signing_.reset();
        if (!note.empty()) log::info("%s: dkim: %s", m.log_id.c_str(), note.c_str());
    }
    // Behind the data in the file, read first (spool::MessageData): the fields go on top.
    if (!late.empty()) {
        if (auto r = write_all(m.data.fd.get(), late.data(), late.size()); !r) return r;
        m.data.late = late.size();
        m.data.length += late.size();
    }
    return {};
}

bool is_utf8_address(std::string_view address) { return mail::has_8bit(address); }

bool needs_smtputf8(const OutboundMessage& m) { return m.utf8_envelope || (m.params.smtputf8 && m.eight_bit_header); }

}  // namespace ferry::relay
