// TLS through GnuTLS on the event loop: credentials (TlsContext) and a Stream Transport per connection.
#include "common/event/tls.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ferry {

namespace {

struct CredsDeleter {
    void operator()(gnutls_certificate_credentials_st* c) const { gnutls_certificate_free_credentials(c); }
};
struct PriorityDeleter {
    void operator()(gnutls_priority_st* p) const { gnutls_priority_deinit(p); }
};
struct SessionDeleter {
    void operator()(gnutls_session_int* s) const { gnutls_deinit(s); }
};
using CredsPtr = std::unique_ptr<gnutls_certificate_credentials_st, CredsDeleter>;
using PriorityPtr = std::unique_ptr<gnutls_priority_st, PriorityDeleter>;
using SessionPtr = std::unique_ptr<gnutls_session_int, SessionDeleter>;

// Non-fatal results (warning alerts) in a row before a peer is considered abusive; it bounds the
// time one connection can keep the loop busy.
constexpr int kMaxNonFatal = 64;

Error tls_error(std::string what, int rc) { return make_error(0, "", std::move(what), gnutls_strerror(rc)); }

// open(2) first so a missing or unreadable file gets errno's words, not GnuTLS's vaguer ones.
Result<void> check_readable(const char* key, const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sys_error(std::string("cannot read ") + key + " " + path);
    ::close(fd);
    return {};
}

bool is_ip_literal(const std::string& name) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

struct TlsContext::Shared {
    CredsPtr creds;
    PriorityPtr priority;
};

namespace {

Result<std::shared_ptr<TlsContext::Shared>> new_shared() {
    auto sh = std::make_shared<TlsContext::Shared>();
    gnutls_certificate_credentials_t c = nullptr;
    if (int rc = gnutls_certificate_allocate_credentials(&c); rc < 0) return tls_error("TLS credentials", rc);
    sh->creds.reset(c);
    gnutls_priority_t p = nullptr;
    const char* err_pos = nullptr;
    if (int rc = gnutls_priority_init(&p, kTlsPriority, &err_pos); rc < 0)
        return tls_error(std::string("TLS priority string at \"") + (err_pos ? err_pos : "") + "\"", rc);
    sh->priority.reset(p);
    return sh;
}

// A GnuTLS session over a socket the Stream owns. Non-blocking: GNUTLS_E_AGAIN becomes
// IoResult::again, with want_write from gnutls_record_get_direction.
class TlsTransport final : public Transport {
public:
    TlsTransport(std::shared_ptr<const TlsContext::Shared> shared, SessionPtr session)
        : shared_(std::move(shared)), session_(std::move(session)) {}

    // Client side: verify the peer against `name` during the handshake. GnuTLS keeps the pointer
    // for the whole session, so the transport holds the string (heap-allocated, never moved).
    void verify_peer(std::string name) {
        verify_name_ = std::make_unique<const std::string>(std::move(name));
        gnutls_session_set_verify_cert(session_.get(), verify_name_->empty() ? nullptr : verify_name_->c_str(), 0);
    }

    IoResult handshake() override;
    IoResult recv(char* buf, size_t len) override;
    IoResult send(const char* buf, size_t len) override;
    size_t pending() const override { return gnutls_record_check_pending(session_.get()); }
    void shutdown() override;
    bool is_tls() const override { return true; }
    std::string describe() const override;

private:
    IoResult again() const { return {IoResult::again, 0, gnutls_record_get_direction(session_.get()) == 1}; }
    IoResult fail(int rc);

    std::shared_ptr<const TlsContext::Shared> shared_;  // credentials outlive the session
    std::unique_ptr<const std::string> verify_name_;     // declared before session_: outlives it
    SessionPtr session_;
    bool established_ = false;
    bool send_blocked_ = false;   // a record_send returned AGAIN: resume it with (NULL, 0)
};

IoResult TlsTransport::fail(int rc) {
    // Tell the peer why, best effort: the socket is non-blocking and about to close anyway.
    if (gnutls_error_is_fatal(rc)) gnutls_alert_send_appropriate(session_.get(), rc);
    std::string text = gnutls_strerror(rc);
    if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        gnutls_datum_t out{};
        unsigned status = gnutls_session_get_verify_cert_status(session_.get());
        auto type = gnutls_certificate_type_get(session_.get());
        if (gnutls_certificate_verification_status_print(status, type, &out, 0) == 0) {
            text += ": " + std::string(reinterpret_cast<char*>(out.data), out.size);
            gnutls_free(out.data);
        }
    }
    return {IoResult::error, 0, false, text};
}

IoResult TlsTransport::handshake() {
    for (int tries = 0; tries < kMaxNonFatal; ++tries) {
        int rc = gnutls_handshake(session_.get());
        if (rc == GNUTLS_E_SUCCESS) {
            established_ = true;
            return {};
        }
        if (rc == GNUTLS_E_AGAIN) return again();
        if (rc == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(rc)) continue;  // warning alerts
        return fail(rc);
    }
    return {IoResult::error, 0, false, "too many TLS warning alerts"};
}

IoResult TlsTransport::recv(char* buf, size_t len) {
    for (int tries = 0; tries < kMaxNonFatal; ++tries) {
        ssize_t n = gnutls_record_recv(session_.get(), buf, len);
        if (n > 0) return {IoResult::ok, static_cast<size_t>(n)};
        if (n == 0) return {IoResult::eof};  // close_notify
        int rc = static_cast<int>(n);
        if (rc == GNUTLS_E_AGAIN) return again();
        if (rc == GNUTLS_E_INTERRUPTED) continue;
        if (rc == GNUTLS_E_REHANDSHAKE) {
            // A TLS 1.2 client asked to renegotiate: refused with a no_renegotiation warning (best effort).
            // GnuTLS keeps the unanswered ClientHello buffered, so the session cannot carry on: close it.
            gnutls_alert_send(session_.get(), GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION);
            return {IoResult::error, 0, false, "client-initiated renegotiation refused"};
        }
        if (rc == GNUTLS_E_PREMATURE_TERMINATION) return {IoResult::eof};  // closed without close_notify
        if (!gnutls_error_is_fatal(rc)) continue;  // a warning alert
        return fail(rc);
    }
    return {IoResult::error, 0, false, "too many TLS warning alerts"};
}

IoResult TlsTransport::send(const char* buf, size_t len) {
    for (;;) {
        // After AGAIN GnuTLS holds the encrypted record; (NULL, 0) resumes it and returns the original count.
        ssize_t n = send_blocked_ ? gnutls_record_send(session_.get(), nullptr, 0)
                                  : gnutls_record_send(session_.get(), buf, len);
        if (n >= 0) {
            send_blocked_ = false;
            return {IoResult::ok, static_cast<size_t>(n)};
        }
        int rc = static_cast<int>(n);
        if (rc == GNUTLS_E_AGAIN) {
            send_blocked_ = true;
            return again();
        }
        if (rc == GNUTLS_E_INTERRUPTED) {
            send_blocked_ = true;
            continue;
        }
        return fail(rc);
    }
}

void TlsTransport::shutdown() {
    // One non-blocking attempt at close_notify; the Stream shuts the socket down right after.
    if (established_) gnutls_bye(session_.get(), GNUTLS_SHUT_WR);
}

std::string TlsTransport::describe() const {
    if (!established_) return "";
    const char* proto = gnutls_protocol_get_name(gnutls_protocol_get_version(session_.get()));
    const char* cipher = gnutls_cipher_get_name(gnutls_cipher_get(session_.get()));
    return std::string(proto ? proto : "TLS") + " with " + (cipher ? cipher : "unknown cipher");
}

SessionPtr new_session(const TlsContext::Shared& sh, unsigned flags, int fd) {
    gnutls_session_t s = nullptr;
    if (gnutls_init(&s, flags | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0) return nullptr;
    SessionPtr session(s);
    if (gnutls_priority_set(s, sh.priority.get()) < 0) return nullptr;
    if (gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, sh.creds.get()) < 0) return nullptr;
    gnutls_transport_set_int(s, fd);
    // The Stream's idle timer bounds the handshake (tls_handshake_timeout), not GnuTLS's clock.
    gnutls_handshake_set_timeout(s, 0);
    return session;
}

// A Transport whose handshake fails at once, when a session could not even be set up (out of memory).
class BrokenTransport final : public Transport {
public:
    IoResult handshake() override { return {IoResult::error, 0, false, "cannot create TLS session"}; }
    IoResult recv(char*, size_t) override { return {IoResult::error, 0, false, "no TLS session"}; }
    IoResult send(const char*, size_t) override { return {IoResult::error, 0, false, "no TLS session"}; }
    bool is_tls() const override { return true; }
};

}  // namespace

Result<TlsContext> TlsContext::load(const std::string& cert_file, const std::string& key_file) {
    if (auto r = check_readable("tls_cert_file", cert_file); !r) return r.error();
    if (auto r = check_readable("tls_key_file", key_file); !r) return r.error();
    auto sh = new_shared();
    if (!sh) return sh.error();
    int rc = gnutls_certificate_set_x509_key_file2(sh.value()->creds.get(), cert_file.c_str(), key_file.c_str(),
                                                   GNUTLS_X509_FMT_PEM, nullptr, 0);
    if (rc < 0) return tls_error("cannot load TLS certificate " + cert_file + " with key " + key_file, rc);
    gnutls_certificate_set_known_dh_params(sh.value()->creds.get(), GNUTLS_SEC_PARAM_MEDIUM);
    return TlsContext(std::move(sh.value()));
}

Result<TlsContext> TlsContext::client_context(const std::string& ca_file) {
    auto sh = new_shared();
    if (!sh) return sh.error();
    gnutls_certificate_credentials_t c = sh.value()->creds.get();
    if (ca_file.empty()) {
        if (int rc = gnutls_certificate_set_x509_system_trust(c); rc < 0)
            return tls_error("cannot load the system trust store", rc);
    } else {
        if (auto r = check_readable("CA file", ca_file); !r) return r.error();
        if (int rc = gnutls_certificate_set_x509_trust_file(c, ca_file.c_str(), GNUTLS_X509_FMT_PEM); rc <= 0)
            return rc < 0 ? tls_error("cannot load CA file " + ca_file, rc)
                          : make_error(0, "", "no certificate in CA file " + ca_file);
    }
    return TlsContext(std::move(sh.value()));
}

std::unique_ptr<Transport> TlsContext::server(int fd) const {
    SessionPtr s = new_session(*shared_, GNUTLS_SERVER, fd);
    if (!s) return std::make_unique<BrokenTransport>();
    gnutls_certificate_server_set_request(s.get(), GNUTLS_CERT_IGNORE);
    return std::make_unique<TlsTransport>(shared_, std::move(s));
}

std::unique_ptr<Transport> TlsContext::client(int fd, const std::string& server_name, bool verify) const {
    SessionPtr s = new_session(*shared_, GNUTLS_CLIENT, fd);
    if (!s) return std::make_unique<BrokenTransport>();
    if (!server_name.empty() && !is_ip_literal(server_name))
        gnutls_server_name_set(s.get(), GNUTLS_NAME_DNS, server_name.data(), server_name.size());
    auto transport = std::make_unique<TlsTransport>(shared_, std::move(s));
    // Verification inside the handshake: it fails with GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR.
    if (verify) transport->verify_peer(server_name);
    return transport;
}

}  // namespace ferry
