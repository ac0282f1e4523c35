// Telling ferry-qmgr about a committed message: "NEW <queue id>" over qmgr_socket (common/proto/qmgr.hpp).
#include "mta/smtpd/qmgr_notify.hpp"

#include <sys/socket.h>

#include "common/base/log.hpp"
#include "common/event/net.hpp"
#include "common/proto/qmgr.hpp"

namespace ferry::smtpd {

namespace proto = ferry::proto::qmgr;

// A non-blocking connect, so a full backlog at qmgr cannot stall the loop.
Result<void> QmgrNotifier::connect() {
    auto fd = net::connect_unix(path_, net::Blocking::no);
    if (!fd) return fd.error();
    fd_ = std::move(fd.value());
    return send(proto::encode_version());
}

Result<void> QmgrNotifier::send(const std::string& line) {
    ssize_t n = ::send(fd_.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(line.size())) return {};
    int err = n < 0 ? errno : EAGAIN;
    fd_.reset();  // a partial or failed line: start again on a fresh connection
    return sys_error("cannot write to " + path_, err);
}

void QmgrNotifier::notify(const std::string& queue_id) {
    std::string line = proto::encode_new(queue_id);
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (!fd_.valid()) {
            if (auto c = connect(); !c) {
                log::warnx("%s: qmgr not notified (%s); it will find the message at its next queue scan",
                           queue_id.c_str(), c.error().what().c_str());
                return;
            }
        }
        if (send(line)) return;
        // The connection broke (qmgr restarted): one retry on a new one.
    }
    log::warnx("%s: qmgr not notified (writes to %s fail); it will find the message at its next queue scan",
               queue_id.c_str(), path_.c_str());
}

}  // namespace ferry::smtpd
