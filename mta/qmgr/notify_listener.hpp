// The qmgr_socket listener: smtpd's "NEW <queue id>" notices and the queue tools' control lines (common/proto/qmgr.hpp).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/event/event.hpp"
#include "common/base/fd.hpp"
#include "common/event/session_set.hpp"
#include "common/base/result.hpp"
#include "common/event/stream.hpp"
#include "common/proto/qmgr.hpp"

namespace ferry::qmgr {

class NotifyListener {
public:
    static constexpr size_t kMaxLine = 1024;   // longest notification line
    static constexpr size_t kMaxPeers = 256;   // simultaneous notifying connections

    using OnNew = std::function<void(const std::string& id)>;
    // FLUSH, HOLD, RELEASE, DELETE, REQUEUE: applied at once, the answer written back as one line.
    using OnControl = std::function<proto::qmgr::Reply(const proto::qmgr::Message&)>;

    NotifyListener(event_base* base, OnNew on_new, OnControl on_control = {});
    ~NotifyListener();

    // Binds the socket (mode 0660: smtpd runs as mail_user, as qmgr does).
    Result<void> listen(const std::string& path);

private:
    class Peer;

    event_base* base_;
    OnNew on_new_;
    OnControl on_control_;
    SessionSet peers_;
};

}  // namespace ferry::qmgr
