// ferry-admin check's blocking client side: connect with a time limit, read SMTP replies, talk SMTP with STARTTLS.
#include "common/admin/check_net.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace ferry::admin {

namespace {

addrinfo* numeric_address(const std::string& address, int port) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    return getaddrinfo(address.c_str(), std::to_string(port).c_str(), &hints, &res) == 0 ? res : nullptr;
}

bool bind_source(int fd, const std::string& source) {
    if (source.empty()) return true;
    addrinfo* src = numeric_address(source, 0);
    if (!src) return errno = EINVAL, false;
    bool ok = bind(fd, src->ai_addr, src->ai_addrlen) == 0;
    freeaddrinfo(src);
    return ok;
}

// The last line of a complete reply does not continue ("250-" continues a multi-line reply).
bool reply_complete(const std::string& buf) {
    if (buf.empty() || buf.back() != '\n') return false;
    std::string body = buf.substr(0, buf.find_last_not_of("\r\n") + 1);
    size_t start = body.rfind('\n');
    std::string last = body.substr(start == std::string::npos ? 0 : start + 1);
    return last.size() < 4 || last[3] != '-';
}

}  // namespace

Fd connect_to(const std::string& address, int port, int timeout_ms, const std::string& source) {
    addrinfo* res = numeric_address(address, port);
    if (!res) return errno = EINVAL, Fd();
    Fd fd(socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int rc = fd.valid() && bind_source(fd.get(), source) ? connect(fd.get(), res->ai_addr, res->ai_addrlen) : -1;
    freeaddrinfo(res);
    if (rc != 0 && errno == EINPROGRESS) {
        pollfd p{fd.get(), POLLOUT, 0};
        int err = 0;
        socklen_t len = sizeof err;
        if (poll(&p, 1, timeout_ms) != 1) return errno = ETIMEDOUT, Fd();
        getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) return errno = err, Fd();
    } else if (rc != 0) {
        return Fd();
    }
    return fd;
}

std::string read_reply(int fd, int timeout_ms) {
    std::string buf;
    char chunk[1024];
    while (buf.size() < 8192 && !reply_complete(buf)) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) != 1) break;
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n <= 0) break;
        buf.append(chunk, static_cast<size_t>(n));
    }
    return buf;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find_first_of("\r\n")); }

SmtpTalk::SmtpTalk(Fd fd, int timeout_ms) : fd_(std::move(fd)), timeout_ms_(timeout_ms) {
    // Blocking with a time limit on each read and write: simple, and GnuTLS then needs no retry loop.
    fcntl(fd_.get(), F_SETFL, fcntl(fd_.get(), F_GETFL) & ~O_NONBLOCK);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool SmtpTalk::send(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = tls_ ? gnutls_record_send(tls_.get(), bytes.data() + done, bytes.size() - done)
                         : write(fd_.get(), bytes.data() + done, bytes.size() - done);
        if (n == GNUTLS_E_INTERRUPTED || (n < 0 && !tls_ && errno == EINTR)) continue;
        if (n <= 0) return false;
        done += static_cast<size_t>(n);
    }
    return true;
}

std::string SmtpTalk::reply() {
    char chunk[2048];
    while (!reply_complete(buffer_) && buffer_.size() < 65536) {
        ssize_t n = tls_ ? gnutls_record_recv(tls_.get(), chunk, sizeof chunk) : read(fd_.get(), chunk, sizeof chunk);
        if (n == GNUTLS_E_INTERRUPTED || (n < 0 && !tls_ && errno == EINTR)) continue;
        if (n <= 0) break;
        buffer_.append(chunk, static_cast<size_t>(n));
    }
    std::string r = reply_complete(buffer_) ? buffer_ : "";
    buffer_.clear();
    return r;
}

std::string SmtpTalk::command(const std::string& line) { return send(line + "\r\n") ? reply() : ""; }

std::string SmtpTalk::starttls(const std::string& server_name) {
    gnutls_certificate_credentials_t creds = nullptr;
    if (gnutls_certificate_allocate_credentials(&creds) < 0) return "out of memory";
    creds_.reset(creds, gnutls_certificate_free_credentials);
    gnutls_session_t session = nullptr;
    if (gnutls_init(&session, GNUTLS_CLIENT) < 0) return "out of memory";
    std::shared_ptr<gnutls_session_int> tls(session, gnutls_deinit);
    gnutls_set_default_priority(session);
    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, creds);
    gnutls_server_name_set(session, GNUTLS_NAME_DNS, server_name.data(), server_name.size());
    gnutls_transport_set_int(session, fd_.get());
    gnutls_handshake_set_timeout(session, static_cast<unsigned>(timeout_ms_));
    int rc;
    do rc = gnutls_handshake(session);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0) return gnutls_strerror(rc);
    tls_ = std::move(tls);
    return "";
}

std::string SmtpTalk::tls_description() const {
    if (!tls_) return "";
    char* desc = gnutls_session_get_desc(tls_.get());
    std::string d = desc ? desc : "TLS";
    gnutls_free(desc);
    return d;
}

}  // namespace ferry::admin
