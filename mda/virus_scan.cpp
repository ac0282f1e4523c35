// ferry-mda's virus scan of mail ferry-smtpd did not scan (ferry-mda(8), VIRUSES): clamd's verdict, then refuse, quarantine, defer or (fail open) mark.
#include "mda/virus_scan.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/base/fs.hpp"
#include "common/base/log.hpp"
#include "common/program/config.hpp"
#include "common/program/daemon.hpp"
#include "common/spool/spool.hpp"
#include "common/verify/clamd.hpp"

namespace ferry::mda {

VirusScanSettings virus_scan_settings(const Config& config) {
    VirusScanSettings s;
    s.address = config.str("clamd_address");
    s.timeout = std::max(1.0, static_cast<double>(config.duration("clamd_timeout").count()));
    s.quarantine = config.str("mda_virus_action") == "quarantine";
    s.fail_open = config.boolean("virus_scan_fail_open");
    s.hostname = my_hostname(config);
    s.quarantine_dir = config.str("state_dir") + "/mda/quarantine";
    return s;
}

namespace {

// Copies [start, end) of `from` to the end of `to`.
Result<void> copy_range(int from, uint64_t start, uint64_t end, const std::function<Result<void>(std::string_view)>& out) {
    char buf[65536];
    for (uint64_t at = start; at < end;) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof buf, end - at));
        ssize_t n = ::pread(from, buf, want, static_cast<off_t>(at));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("read the message");
        if (n == 0) return make_error(0, "", "unexpected end of the message");
        if (auto r = out({buf, static_cast<size_t>(n)}); !r) return r;
        at += static_cast<uint64_t>(n);
    }
    return {};
}

Result<void> make_dir(const std::string& path) {
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return sys_error("mkdir " + path);
    return {};
}

// The message kept as ${state_dir}/mda/quarantine/QID.UNIQUE, durable before the sender hears
// anything: one field with the verdict and the envelope, then the message as it arrived.
Result<std::string> quarantine(const VirusScanSettings& s, const ScannedMessage& m, const std::string& signature) {
    for (const std::string& d : {dir_of(dir_of(s.quarantine_dir)), dir_of(s.quarantine_dir), s.quarantine_dir})
        if (auto r = make_dir(d); !r) return r.error();
    if (auto r = fsync_dir(dir_of(s.quarantine_dir)); !r) return r.error();  // the directory itself survives a crash
    std::string name = m.qid + "." + spool::new_queue_id();
    auto file = DurableFile::create(s.quarantine_dir + "/.tmp." + name, 0600);
    if (!file) return file.error();
    if (!*file) return make_error(0, "", "quarantine: name taken: " + name);
    DurableFile& f = **file;
    std::string field = "X-Ferry-Quarantine: virus found: " + signature + "; from=<" + m.sender + ">; to=" + m.recipients;
    for (char& c : field)
        if (c == '\r' || c == '\n') c = ' ';
    field += "\n";
    if (auto r = f.write(field); !r) return r.error();
    auto w = copy_range(m.source->fd.get(), m.source->start, m.source->end, [&f](std::string_view d) { return f.write(d); });
    if (!w) return w.error();
    std::string path = s.quarantine_dir + "/" + name;
    auto published = f.publish(path, DurableFile::Publish::link);
    if (!published) return published.error();
    if (!*published) return make_error(0, "", "quarantine: name taken: " + name);
    return path;
}

// The message with the unscanned field first, in a memory file (bounded by message_size_limit).
Result<Deliverer::Source> mark_unscanned(const VirusScanSettings& s, const Deliverer::Source& src) {
    Fd fd(::memfd_create("ferry-mda-unscanned", MFD_CLOEXEC));
    if (!fd.valid()) return sys_error("memfd_create");
    std::string field = scan::unscanned_field(s.hostname);
    int out = fd.get();
    auto write = [out](std::string_view d) { return write_all(out, d.data(), d.size()); };
    if (auto r = write(field); !r) return r.error();
    if (auto r = copy_range(src.fd.get(), src.start, src.end, write); !r) return r.error();
    return Deliverer::Source{std::move(fd), 0, field.size() + (src.end - src.start)};
}

}  // namespace

VirusScan scan_for_viruses(const VirusScanSettings& s, const ScannedMessage& m) {
    VirusScan v;
    const char* id = m.log_id.c_str();
    if (!s.enabled()) return v;
    if (scan::scanned_by_smtpd(m.head, s.hostname)) {
        v.skipped = true;
        log::debug("%s: virus scan: already scanned by ferry-smtpd", id);
        return v;
    }
    const Deliverer::Source& src = *m.source;
    auto read = [&src](uint64_t at, char* buf, size_t len) -> Result<size_t> {
        uint64_t left = src.end - src.start > at ? src.end - src.start - at : 0;
        size_t want = static_cast<size_t>(std::min<uint64_t>(len, left));
        if (want == 0) return size_t{0};
        for (;;) {
            ssize_t n = ::pread(src.fd.get(), buf, want, static_cast<off_t>(src.start + at));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return sys_error("pread");
            if (n == 0) return make_error(0, "", "unexpected end of the message");
            return static_cast<size_t>(n);
        }
    };
    scan::ClamdVerdict verdict = scan::clamd_scan(s.address, read, s.timeout);
    using K = scan::ClamdVerdict::Kind;
    if (verdict.kind == K::clean) {
        log::debug("%s: virus scan: clean", id);
        return v;
    }
    if (verdict.kind == K::found) {
        v.text = verdict.text;
        if (!s.quarantine) {
            v.outcome = VirusScan::Outcome::infected;
            log::info("%s: virus found by clamd: %s", id, v.text.c_str());
            return v;
        }
        auto path = quarantine(s, m, v.text);
        if (path) {
            v.outcome = VirusScan::Outcome::quarantined;
            log::info("%s: virus found by clamd: %s: quarantined as %s", id, v.text.c_str(), path->c_str());
            return v;
        }
        verdict = {K::error, "virus found (" + v.text + ") but not quarantined: " + path.error().what()};
    }
    log::warnx("%s: clamd: %s", id, verdict.text.c_str());
    v.text = verdict.text;
    if (s.fail_open && verdict.text.rfind("virus found", 0) != 0) {
        auto marked = mark_unscanned(s, src);
        if (marked) {
            v.outcome = VirusScan::Outcome::unscanned;
            v.marked = std::move(marked.value());
            log::warnx("%s: delivered unscanned (virus_scan_fail_open)", id);
            return v;
        }
        v.text += "; " + marked.error().what();
    }
    v.outcome = VirusScan::Outcome::unavailable;
    return v;
}

}  // namespace ferry::mda
