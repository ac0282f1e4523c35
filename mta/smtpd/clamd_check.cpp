// The virus check of a received message: clamd's INSTREAM protocol on a worker thread, every step within clamd_timeout.
#include "mta/smtpd/clamd_check.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "common/base/log.hpp"
#include "mta/smtpd/scanner_socket.hpp"

namespace ferry::smtpd {

namespace {

ClamdVerdict error(std::string why) { return {ClamdVerdict::Kind::error, std::move(why)}; }

class ClamdRun : public CheckRun {
public:
    ClamdRun(WorkerPool& pool, std::shared_ptr<bool> alive) : pool_(pool), alive_(std::move(alive)) {}
    ~ClamdRun() override {
        *alive_ = false;
        pool_.cancel(job_);
    }
    WorkerPool::JobId job_ = 0;

private:
    WorkerPool& pool_;
    std::shared_ptr<bool> alive_;  // read and written on the loop only
};

Finding finding_of(const ClamdVerdict& v, const CheckedMessage& m) {
    Finding f;
    switch (v.kind) {
        case ClamdVerdict::Kind::clean:
            f.fields = "X-Virus-Scanned: clamd\n";
            break;
        case ClamdVerdict::Kind::found:
            f.refusal = make_error(554, "5.7.1", "Message refused: virus found: " + v.text, "clamd: " + v.text + " FOUND");
            break;
        case ClamdVerdict::Kind::error:
            log::warnx("%s: %s: clamd: %s", m.session.c_str(), m.id.c_str(), v.text.c_str());
            f.refusal = make_error(451, "4.7.1", "Virus scan unavailable, try again later", "clamd: " + v.text);
            break;
    }
    return f;
}

class ClamdCheck : public MessageCheck {
public:
    ClamdCheck(WorkerPool& pool, std::string address, double timeout)
        : pool_(pool), address_(std::move(address)), timeout_(timeout) {}
    const char* name() const override { return "clamd"; }

    std::unique_ptr<CheckRun> start(std::shared_ptr<const CheckedMessage> m, Done done) override {
        auto alive = std::make_shared<bool>(true);
        auto run = std::make_unique<ClamdRun>(pool_, alive);
        auto verdict = std::make_shared<ClamdVerdict>();
        double deadline = now() + timeout_;
        run->job_ = pool_.submit(
            [m, verdict, deadline, address = address_] {
                auto fd = connect_to(address, deadline);
                *verdict = fd ? clamd_instream(fd->get(), m->data, deadline)
                              : error("cannot connect to " + address + ": " + fd.error().what());
            },
            [m, verdict, alive, done = std::move(done)] {
                if (*alive) done(finding_of(*verdict, *m));  // may drop the run: nothing after this
            });
        return run;
    }

private:
    WorkerPool& pool_;
    std::string address_;
    double timeout_;
};

}  // namespace

ClamdVerdict parse_clamd_reply(std::string_view r) {
    while (!r.empty() && (r.back() == '\0' || r.back() == '\n' || r.back() == '\r')) r.remove_suffix(1);
    std::string_view body = r;
    if (size_t colon = r.find(": "); colon != std::string_view::npos) body = r.substr(colon + 2);
    if (body == "OK") return {ClamdVerdict::Kind::clean, ""};
    if (body.size() > 6 && body.ends_with(" FOUND")) {
        std::string name(body.substr(0, body.size() - 6));
        for (auto& c : name)
            if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
        if (name.size() > 200) name.resize(200);
        return {ClamdVerdict::Kind::found, name};
    }
    std::string why(r.substr(0, std::min<size_t>(r.size(), 200)));
    for (auto& c : why)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    return error(why.empty() ? "no answer" : "answered \"" + why + "\"");
}

namespace {

// clamd's reply, up to its NUL.
ClamdVerdict read_reply(int fd, double deadline) {
    std::string reply;
    char in[512];
    while (reply.find('\0') == std::string::npos && reply.size() < 4096) {
        ssize_t r = ::recv(fd, in, sizeof in, MSG_DONTWAIT);
        if (r > 0) reply.append(in, static_cast<size_t>(r));
        else if (r == 0) break;
        else if (errno != EAGAIN && errno != EINTR) return error(std::string("recv: ") + std::strerror(errno));
        else if (!wait_for(fd, POLLIN, deadline)) return error("no answer within clamd_timeout");
    }
    return parse_clamd_reply(reply.substr(0, reply.find('\0')));
}

// A send that failed: clamd may have said why before it closed ("INSTREAM size limit exceeded").
ClamdVerdict send_failed(int fd) {
    ClamdVerdict v = read_reply(fd, now() + 1);
    if (v.kind == ClamdVerdict::Kind::error && (v.text == "no answer" || v.text.rfind("recv", 0) == 0 ||
                                                v.text.rfind("no answer", 0) == 0))
        return error("INSTREAM: send failed or timed out");
    return v;
}

}  // namespace

ClamdVerdict clamd_instream(int fd, const spool::MessageData& data, double deadline, size_t chunk) {
    static const char kCommand[] = "zINSTREAM";
    if (!send_all(fd, kCommand, sizeof kCommand, deadline)) return send_failed(fd);
    std::string buf(4 + chunk, '\0');
    for (uint64_t at = 0;;) {
        auto n = data.read(at, buf.data() + 4, chunk);
        if (!n) return error("message not read: " + n.error().what());
        uint32_t len = htonl(static_cast<uint32_t>(n.value()));
        std::memcpy(buf.data(), &len, 4);
        // A chunk of length 0 ends the stream.
        if (!send_all(fd, buf.data(), 4 + n.value(), deadline)) return send_failed(fd);
        if (n.value() == 0) break;
        at += n.value();
    }
    return read_reply(fd, deadline);
}

std::unique_ptr<MessageCheck> make_clamd_check(WorkerPool& pool, std::string address, double timeout) {
    return std::make_unique<ClamdCheck>(pool, std::move(address), timeout);
}

}  // namespace ferry::smtpd
