// One message ferry-relay was handed: its envelope, an unnamed temporary file with its data, and what the peer must support.
#include "mta/relay/message.hpp"

#include <fcntl.h>

#include "common/base/fs.hpp"

namespace ferry::relay {

Result<void> MessageWriter::open(const std::string& dir) {
    // O_TMPFILE: nothing to clean up after a crash, the data is gone with the last descriptor.
    fd_ = Fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!fd_.valid()) return sys_error("cannot create a temporary file in " + dir);
    size_ = 0;
    eight_bit_ = false;
    check_ = mail::SevenBitEncoder();
    return {};
}

Result<void> MessageWriter::append(std::string_view chunk) {
    if (auto r = write_all(fd_.get(), chunk.data(), chunk.size()); !r) return r;
    size_ += chunk.size();
    if (!eight_bit_ && mail::has_8bit(chunk)) eight_bit_ = true;
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
    m.no_seven_bit = check_.error();
    m.data.fd = std::move(fd_);
    m.data.offset = 0;
    m.data.length = size_;
    return {};
}

bool is_utf8_address(std::string_view address) { return mail::has_8bit(address); }

}  // namespace ferry::relay
