// The queue file: a self-describing record of one accepted message, written by smtpd, owned by qmgr.
#include "common/spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "common/net.hpp"

namespace ferry::spool {

namespace {

// Envelope values are single lines; a CR or LF inside would forge records.
std::string clean(std::string_view v) {
    std::string out(v);
    for (char& c : out)
        if (c == '\n' || c == '\r') c = ' ';
    return out;
}

Error corrupt(const std::string& why) { return make_error(0, "", "corrupt queue file: " + why); }

}  // namespace

Result<void> ensure_layout(const std::string& spool_dir) {
    for (const std::string& d : {spool_dir, spool_dir + "/" + kIncoming, spool_dir + "/" + kQueue}) {
        if (mkdir(d.c_str(), 0750) != 0 && errno != EEXIST) return sys_error("cannot create " + d);
    }
    return {};
}

std::string new_queue_id() {
    static std::mt19937 rng{std::random_device{}()};
    timeval tv;
    gettimeofday(&tv, nullptr);
    uint64_t usec = static_cast<uint64_t>(tv.tv_sec) * 1000000ULL + static_cast<uint64_t>(tv.tv_usec);
    char buf[32];
    snprintf(buf, sizeof buf, "%013" PRIX64 "%03X", static_cast<uint64_t>(usec & 0xFFFFFFFFFFFFFULL), static_cast<unsigned>(rng() & 0xFFF));
    return buf;
}

std::string encode_header(const Envelope& env) {
    std::string out = std::string(kMagic) + "\n";
    out += "id " + clean(env.id) + "\n";
    out += "arrival " + std::to_string(env.arrival) + "\n";
    out += "sender " + clean(env.sender) + "\n";
    out += "client " + clean(env.client) + "\n";
    out += "helo " + clean(env.helo) + "\n";
    if (!env.auth.empty()) out += "auth " + clean(env.auth) + "\n";
    for (const auto& r : env.recipients) out += "rcpt " + clean(r) + "\n";
    out += "data\n";
    return out;
}

std::string encode_trailer(uint64_t data_length) { return "\nend " + std::to_string(data_length) + "\n"; }

Result<QueuedMessage> decode(std::string_view file) {
    QueuedMessage m;
    size_t pos = 0;
    auto next_line = [&](std::string_view& line) {
        size_t nl = file.find('\n', pos);
        if (nl == std::string_view::npos) return false;
        line = file.substr(pos, nl - pos);
        pos = nl + 1;
        return true;
    };
    std::string_view line;
    if (!next_line(line) || line != kMagic) return corrupt("missing \"" + std::string(kMagic) + "\" header");
    for (;;) {
        if (!next_line(line)) return corrupt("no data record");
        if (line == "data") break;
        size_t sp = line.find(' ');
        std::string_view key = line.substr(0, sp);
        std::string value = sp == std::string_view::npos ? "" : std::string(line.substr(sp + 1));
        if (key == "id") m.envelope.id = value;
        else if (key == "arrival") m.envelope.arrival = std::strtoll(value.c_str(), nullptr, 10);
        else if (key == "sender") m.envelope.sender = value;
        else if (key == "client") m.envelope.client = value;
        else if (key == "helo") m.envelope.helo = value;
        else if (key == "auth") m.envelope.auth = value;
        else if (key == "rcpt") m.envelope.recipients.push_back(value);
        // Unknown records are skipped, so a newer writer's extra fields do not break an older reader.
    }
    // The END record is last: "\nend <length>\n".
    if (file.size() < pos + 1 || file.back() != '\n') return corrupt("no END record");
    size_t end_at = file.rfind("\nend ", file.size() - 1);
    if (end_at == std::string_view::npos || end_at < pos - 1) return corrupt("no END record");
    std::string len_text(file.substr(end_at + 5, file.size() - 1 - (end_at + 5)));
    char* endp = nullptr;
    uint64_t len = std::strtoull(len_text.c_str(), &endp, 10);
    if (len_text.empty() || *endp != '\0' || pos + len != end_at) return corrupt("length in END record does not match");
    if (m.envelope.id.empty() || m.envelope.recipients.empty()) return corrupt("no id or no recipients");
    m.data.assign(file.substr(pos, len));
    return m;
}

Result<QueuedMessage> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return sys_error("cannot open " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    return decode(ss.str());
}

Result<void> fsync_dir(const std::string& dir) {
    Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return sys_error("cannot open directory " + dir);
    if (fsync(fd.get()) != 0) return sys_error("fsync " + dir);
    return {};
}

Result<Writer> Writer::create(const std::string& spool_dir, Envelope& env) {
    Writer w;
    w.spool_dir_ = spool_dir;
    for (int attempt = 0; attempt < 10; ++attempt) {
        env.id = new_queue_id();
        std::string path = spool_dir + "/" + kIncoming + "/" + env.id;
        w.fd_.reset(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
        if (w.fd_.valid()) break;
        if (errno != EEXIST) return sys_error("cannot create " + path);
    }
    if (!w.fd_.valid()) return make_error(0, "", "cannot allocate a queue id");
    w.id_ = env.id;
    std::string header = encode_header(env);
    if (auto r = net::write_all(w.fd_.get(), header.data(), header.size()); !r) return r.error();
    return w;
}

Writer::~Writer() { discard(); }

Result<void> Writer::append(std::string_view data) {
    if (auto r = net::write_all(fd_.get(), data.data(), data.size()); !r) return r;
    data_length_ += data.size();
    return {};
}

Result<void> Writer::commit() {
    std::string trailer = encode_trailer(data_length_);
    if (auto r = net::write_all(fd_.get(), trailer.data(), trailer.size()); !r) return r;
    if (fsync(fd_.get()) != 0) return sys_error("fsync queue file " + id_);
    fd_.reset();
    std::string from = spool_dir_ + "/" + kIncoming + "/" + id_;
    std::string to = spool_dir_ + "/" + kQueue + "/" + id_;
    if (rename(from.c_str(), to.c_str()) != 0) return sys_error("rename " + from + " to " + to);
    done_ = true;
    return fsync_dir(spool_dir_ + "/" + kQueue);
}

void Writer::discard() {
    if (done_ || id_.empty()) return;
    done_ = true;
    fd_.reset();
    unlink((spool_dir_ + "/" + kIncoming + "/" + id_).c_str());
}

}  // namespace ferry::spool
