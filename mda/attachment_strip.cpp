// attachment_policy strip at delivery (ferry-mda(8), ATTACHMENTS): the message with each refused file replaced by a note.
#include "mda/attachment_strip.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/base/fs.hpp"
#include "common/base/log.hpp"

namespace ferry::mda {

namespace {

Error strip_error(const Error& e) {
    return make_error(451, "4.3.0", "Temporary failure applying the attachment policy", e.what());
}

// Up to `len` octets of the message in `src` from `at` (0 at its end).
Result<size_t> read_at(const Deliverer::Source& src, uint64_t at, char* buf, size_t len) {
    uint64_t size = src.end - src.start;
    if (at >= size) return size_t{0};
    size_t want = static_cast<size_t>(std::min<uint64_t>(len, size - at));
    for (;;) {
        ssize_t n = ::pread(src.fd.get(), buf, want, static_cast<off_t>(src.start + at));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("read back a copy of the message");
        return static_cast<size_t>(n);
    }
}

Result<std::string> read_range(const Deliverer::Source& src, uint64_t from, uint64_t to) {
    std::string out(static_cast<size_t>(to - from), '\0');
    for (size_t got = 0; got < out.size();) {
        auto n = read_at(src, from + got, out.data() + got, out.size() - got);
        if (!n) return n.error();
        if (*n == 0) return make_error(0, "", "unexpected end of the message");
        got += *n;
    }
    return out;
}

Result<void> copy_range(const Deliverer::Source& src, uint64_t from, uint64_t to, int out) {
    char buf[65536];
    for (uint64_t at = from; at < to;) {
        auto n = read_at(src, at, buf, static_cast<size_t>(std::min<uint64_t>(sizeof buf, to - at)));
        if (!n) return n.error();
        if (*n == 0) return make_error(0, "", "unexpected end of the message");
        if (auto r = write_all(out, buf, *n); !r) return r;
        at += *n;
    }
    return {};
}

}  // namespace

Result<std::optional<Deliverer::Source>> strip_attachments(const mail::AttachmentSettings& settings,
                                                           const Deliverer::Source& src, const std::string& qid) {
    auto scan = mail::scan_attachments(
        [&src](uint64_t at, char* buf, size_t len) { return read_at(src, at, buf, len); }, settings, true);
    if (!scan) return strip_error(scan.error());
    for (const auto& u : scan->unread) log::info("%s: attachment %s", qid.c_str(), u.c_str());
    if (scan->parts.empty()) return std::optional<Deliverer::Source>();
    Fd out(::memfd_create("ferry-mda-strip", MFD_CLOEXEC));
    if (out.get() < 0) return strip_error(sys_error("memfd_create"));
    const std::string policy = "attachment_policy strip";
    uint64_t size = src.end - src.start, at = 0, written = 0;
    for (const auto& part : scan->parts) {
        auto header = read_range(src, part.start, part.header_end);
        auto last = part.end > part.start ? read_range(src, part.end - 1, part.end) : Result<std::string>(std::string());
        if (!header || !last) return strip_error(!header ? header.error() : last.error());
        std::string note = mail::replacement_part(*header, part, policy, *last == "\n");
        Result<void> r = copy_range(src, at, part.start, out.get());
        if (r) r = write_all(out.get(), note.data(), note.size());
        if (!r) return strip_error(r.error());
        written += (part.start - at) + note.size();
        at = part.end;
        log::info("%s: %s replaced by a note (%s)", qid.c_str(), part.why.c_str(), policy.c_str());
    }
    if (auto r = copy_range(src, at, size, out.get()); !r) return strip_error(r.error());
    written += size - at;
    return std::optional<Deliverer::Source>(Deliverer::Source{std::move(out), 0, written});
}

}  // namespace ferry::mda
