// Fuzz target: a ferry-smtpd session after STARTTLS, ended by the client's TLS close_notify.
//
// The input is what the client sends once the handshake is done; then the client closes TLS
// (close_notify) wherever the input stops: in the middle of a BDAT chunk, of DATA, of a command.
// That is the 2026 Exim BDAT bug's shape (a TLS close during BDAT touching freed state), run here
// under the sanitizers (./dev test). Checked: well-formed replies, no incoming/ file left, no hang.
#include <dirent.h>
#include <gnutls/x509.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/log.hpp"
#include "common/event/event.hpp"
#include "common/event/stream.hpp"
#include "common/event/tls.hpp"
#include "common/program/config.hpp"
#include "common/spool/spool.hpp"
#include "mta/smtpd/server.hpp"
#include "mta/smtpd/session.hpp"
#include "tests/fuzz/session_driver.hpp"

using namespace ferry;

namespace {

std::string pem(int (*export2)(void*, gnutls_x509_crt_fmt_t, gnutls_datum_t*), void* obj) {
    gnutls_datum_t d{};
    if (export2(obj, GNUTLS_X509_FMT_PEM, &d) != 0) std::abort();
    std::string s(reinterpret_cast<char*>(d.data), d.size);
    gnutls_free(d.data);
    return s;
}

// A self-signed ECDSA certificate for "localhost" written to dir/cert.pem and dir/key.pem.
void make_cert(const std::string& dir) {
    gnutls_x509_privkey_t k;
    gnutls_x509_crt_t c;
    gnutls_x509_privkey_init(&k);
    gnutls_x509_privkey_generate(k, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
    gnutls_x509_crt_init(&c);
    time_t now = time(nullptr);
    unsigned char serial[] = {1};
    gnutls_x509_crt_set_version(c, 3);
    gnutls_x509_crt_set_serial(c, serial, sizeof serial);
    gnutls_x509_crt_set_activation_time(c, now - 3600);
    gnutls_x509_crt_set_expiration_time(c, now + 86400);
    gnutls_x509_crt_set_dn(c, "CN=localhost", nullptr);
    gnutls_x509_crt_set_key(c, k);
    if (gnutls_x509_crt_sign2(c, c, k, GNUTLS_DIG_SHA256, 0) != 0) std::abort();
    std::ofstream(dir + "/cert.pem") << pem(reinterpret_cast<int (*)(void*, gnutls_x509_crt_fmt_t, gnutls_datum_t*)>(
                                                &gnutls_x509_crt_export2), c);
    std::ofstream(dir + "/key.pem") << pem(reinterpret_cast<int (*)(void*, gnutls_x509_crt_fmt_t, gnutls_datum_t*)>(
                                               &gnutls_x509_privkey_export2), k);
    gnutls_x509_crt_deinit(c);
    gnutls_x509_privkey_deinit(k);
}

struct World {
    EventBase base{event_base_new()};
    Config config;
    std::unique_ptr<smtpd::Server> server;
    std::optional<TlsContext> client_tls;
    std::string spool;
    unsigned long long sessions = 0;
};

World& world() {
    static std::unique_ptr<World> w = [] {
        log::init("fuzz-smtp-session-tls", "stderr", "error");
        fuzz::LeakCheckPause pause;
        auto w = std::make_unique<World>();
        const std::string& dir = fuzz::temp_dir();
        w->spool = dir + "/spool";
        fuzz::write_accounts(dir + "/accounts.db");
        make_cert(dir);
        std::string conf = "hostname = mx.example.test\n"
                           "spool_dir = " + w->spool + "\n"
                           "account_db = " + dir + "/accounts.db\n"
                           "qmgr_socket = " + dir + "/no-qmgr.sock\n"
                           "postmaster_address = postmaster@example.test\n"
                           "message_size_limit = 4k\n"
                           "smtpd_listen =\n"
                           "smtpd_timeout = 30s\n"
                           "smtpd_max_recipients = 3\n"
                           "smtpd_max_errors = 8\n"
                           "smtpd_max_received = 3\n"
                           "smtpd_spf_policy = off\n"
                           "smtpd_dkim_verify = no\n";
        auto c = Config::parse(conf, "fuzz.conf", "smtpd");
        if (!c) std::abort();
        w->config = std::move(c.value());
        auto tls = TlsContext::load(dir + "/cert.pem", dir + "/key.pem");
        auto client = TlsContext::client_context(dir + "/cert.pem");
        if (!tls || !client) std::abort();
        w->client_tls.emplace(std::move(client.value()));
        w->server = std::make_unique<smtpd::Server>(w->base.get(), w->config, std::move(tls.value()));
        if (auto r = w->server->start(); !r) std::abort();
        return w;
    }();
    return *w;
}

// The client end: collects the server's bytes, notes the close.
struct Client final : Stream::Handler {
    std::string got;
    bool closed = false;
    void on_input(Stream& s) noexcept override {
        size_t n = evbuffer_get_length(s.input());
        std::string chunk(n, '\0');
        evbuffer_remove(s.input(), chunk.data(), n);
        got += chunk;
    }
    void on_close(Stream&, const std::string&) noexcept override { closed = true; }
};

template <class Pred>
bool run_until(event_base* base, Pred done) {
    auto start = std::chrono::steady_clock::now();
    while (!done()) {
        if (std::chrono::steady_clock::now() - start > std::chrono::duration<double>(fuzz::kSessionSeconds)) return false;
        timeval tick{0, 20000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    World& w = world();
    auto pair = fuzz::socket_pair();
    auto session = std::make_unique<smtpd::Session>(*w.server, std::move(pair.server), smtpd::ListenerKind::smtp,
                                                    "T" + std::to_string(++w.sessions));
    Client handler;
    auto client = std::make_unique<Stream>(w.base.get(), std::move(pair.client), &handler);
    client->write("STARTTLS\r\n");
    if (!run_until(w.base.get(), [&] { return handler.got.find("220 2.0.0") != std::string::npos; })) std::abort();
    std::optional<Result<void>> done;
    client->start_tls(w.client_tls->client(client->fd(), "localhost", false), [&](Result<void> r) { done = r; });
    if (!run_until(w.base.get(), [&] { return done.has_value(); }) || !done->ok()) std::abort();
    client->write(std::string_view(reinterpret_cast<const char*>(data), size));
    for (int i = 0; i < 3; ++i) event_base_loop(w.base.get(), EVLOOP_NONBLOCK);
    client->close("close_notify");  // TLS close_notify, wherever the session is
    if (!run_until(w.base.get(), [&] { return handler.closed; })) {
        std::fprintf(stderr, "smtp tls session fuzzer: no close within %.0f s\n", fuzz::kSessionSeconds);
        std::abort();
    }
    for (int i = 0; i < 5; ++i) event_base_loop(w.base.get(), EVLOOP_NONBLOCK);
    client.reset();
    session.reset();
    if (std::getenv("FERRY_FUZZ_TRACE")) std::fwrite(handler.got.data(), 1, handler.got.size(), stderr);
    fuzz::check_smtp_replies(handler.got, "smtp-tls");
    fuzz::empty_dir(w.spool + "/" + spool::kQueue);
    std::string incoming = w.spool + "/" + spool::kIncoming;
    if (DIR* d = ::opendir(incoming.c_str())) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') {
                std::fprintf(stderr, "smtp tls session fuzzer: %s left in incoming/\n", e->d_name);
                std::abort();
            }
        ::closedir(d);
    }
    return 0;
}
