// A blocking client of qmgr_socket's control lines, for ferry-admin queue and ferry-sendmail -q.
#include "common/proto/qmgr_client.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>

#include "common/base/fs.hpp"
#include "common/event/net.hpp"

namespace ferry::proto::qmgr {

Result<Reply> send_control(const std::string& socket_path, Message::Type type, const std::string& arg,
                           int timeout_seconds) {
    auto fd = net::connect_unix(socket_path);
    if (!fd) return make_error(0, "", "ferry-qmgr is not running (" + fd.error().what() + ")");
    timeval tv{timeout_seconds, 0};
    setsockopt(fd->get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string out = encode_version() + encode_control(type, arg);
    if (auto r = write_all(fd->get(), out.data(), out.size()); !r)
        return make_error(0, "", "cannot talk to ferry-qmgr (" + r.error().what() + ")");
    std::string line;
    char c;
    while (line.size() < 4096) {
        ssize_t n = read(fd->get(), &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return make_error(0, "", "ferry-qmgr did not answer within " + std::to_string(timeout_seconds) + "s");
        if (n <= 0) return make_error(0, "", "ferry-qmgr closed the connection without an answer (see its log)");
        if (c == '\n') return decode_reply(line);
        line += c;
    }
    return make_error(0, "", "ferry-qmgr's answer is too long");
}

}  // namespace ferry::proto::qmgr
