// TLS over Streams in one process: a GnuTLS server and client Transport on a socketpair, on one loop.
#include <catch.hpp>

#include <gnutls/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "common/event/event.hpp"
#include "common/event/stream.hpp"
#include "common/event/tls.hpp"
#include "common/program/tls_config.hpp"

using namespace ferry;
using namespace std::chrono_literals;

namespace {

std::string export_pem(gnutls_x509_crt_t crt) {
    gnutls_datum_t d{};
    REQUIRE(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d) == 0);
    std::string s(reinterpret_cast<char*>(d.data), d.size);
    gnutls_free(d.data);
    return s;
}

std::string export_pem(gnutls_x509_privkey_t key) {
    gnutls_datum_t d{};
    REQUIRE(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d) == 0);
    std::string s(reinterpret_cast<char*>(d.data), d.size);
    gnutls_free(d.data);
    return s;
}

// A self-signed ECDSA certificate for "localhost" in a fresh temporary directory.
struct TestCert {
    std::string dir, cert, key;
    TestCert() {
        char tmpl[] = "/tmp/ferry-tls-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        cert = dir + "/cert.pem";
        key = dir + "/key.pem";
        gnutls_x509_privkey_t k;
        gnutls_x509_crt_t c;
        REQUIRE(gnutls_x509_privkey_init(&k) == 0);
        REQUIRE(gnutls_x509_privkey_generate(k, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) == 0);
        REQUIRE(gnutls_x509_crt_init(&c) == 0);
        time_t now = time(nullptr);
        unsigned char serial[] = {1, 2, 3, 4};
        gnutls_x509_crt_set_version(c, 3);
        gnutls_x509_crt_set_serial(c, serial, sizeof serial);
        gnutls_x509_crt_set_activation_time(c, now - 3600);
        gnutls_x509_crt_set_expiration_time(c, now + 86400);
        REQUIRE(gnutls_x509_crt_set_dn(c, "CN=localhost", nullptr) == 0);
        gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_SET);
        gnutls_x509_crt_set_key(c, k);
        gnutls_x509_crt_set_basic_constraints(c, 0, -1);
        gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_DIGITAL_SIGNATURE);
        gnutls_x509_crt_set_key_purpose_oid(c, GNUTLS_KP_TLS_WWW_SERVER, 0);
        REQUIRE(gnutls_x509_crt_sign2(c, c, k, GNUTLS_DIG_SHA256, 0) == 0);
        std::ofstream(cert) << export_pem(c);
        std::ofstream(key) << export_pem(k);
        gnutls_x509_crt_deinit(c);
        gnutls_x509_privkey_deinit(k);
    }
    ~TestCert() {
        ::unlink(cert.c_str());
        ::unlink(key.c_str());
        ::rmdir(dir.c_str());
    }
};

// Collects input; the server side echoes it back.
struct Side : Stream::Handler {
    bool echo = false;
    std::string got;
    bool closed = false;
    std::string close_reason;
    void on_input(Stream& s) noexcept override {
        size_t n = evbuffer_get_length(s.input());
        std::string chunk(n, '\0');
        evbuffer_remove(s.input(), chunk.data(), n);
        if (echo) s.write(chunk);
        else got += chunk;
    }
    void on_close(Stream&, const std::string& reason) noexcept override {
        closed = true;
        close_reason = reason;
    }
};

struct Pair {
    EventBase base{event_base_new()};
    Side server_side, client_side;
    std::unique_ptr<Stream> server, client;
    std::optional<Result<void>> server_done, client_done;
    Pair() {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        server_side.echo = true;
        server = std::make_unique<Stream>(base.get(), Fd(sv[0]), &server_side);
        client = std::make_unique<Stream>(base.get(), Fd(sv[1]), &client_side);
    }
    void start(const TlsContext& srv, const TlsContext& cli, const std::string& name, bool verify) {
        server->start_tls(srv.server(server->fd()), [this](Result<void> r) { server_done = r; });
        client->start_tls(cli.client(client->fd(), name, verify), [this](Result<void> r) { client_done = r; });
    }
    template <class Pred>
    void run_until(Pred done) {
        auto start = std::chrono::steady_clock::now();
        while (!done() && std::chrono::steady_clock::now() - start < 20s) event_base_loop(base.get(), EVLOOP_ONCE);
    }
};

}  // namespace

TEST_CASE("TlsContext::load names the missing file", "[tls]") {
    TestCert tc;
    auto r = TlsContext::load(tc.dir + "/nope.pem", tc.key);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().what().find("tls_cert_file " + tc.dir + "/nope.pem") != std::string::npos);
    CHECK(r.error().what().find("No such file") != std::string::npos);
    auto k = TlsContext::load(tc.cert, tc.dir + "/nokey.pem");
    REQUIRE_FALSE(k.ok());
    CHECK(k.error().what().find("tls_key_file") != std::string::npos);
    // A key that does not match the certificate (here: the certificate given as key) is refused.
    auto bad = TlsContext::load(tc.cert, tc.cert);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().what().find("cannot load TLS certificate") != std::string::npos);
    CHECK(TlsContext::load(tc.cert, tc.key).ok());
}

TEST_CASE("tls_from_config", "[tls]") {
    TestCert tc;
    Config c = Config::defaults("smtpd");
    auto none = tls_from_config(c);
    REQUIRE(none.ok());
    CHECK_FALSE(none.value().has_value());
    REQUIRE(c.set("tls_cert_file", tc.cert).ok());
    CHECK_FALSE(tls_from_config(c).ok());  // key missing
    REQUIRE(c.set("tls_key_file", tc.key).ok());
    auto some = tls_from_config(c);
    REQUIRE(some.ok());
    CHECK(some.value().has_value());
}

TEST_CASE("TLS handshake and a byte-exact echo of 4 MB over two Streams", "[tls]") {
    TestCert tc;
    auto srv = TlsContext::load(tc.cert, tc.key);
    REQUIRE(srv.ok());
    auto cli = TlsContext::client_context(tc.cert);
    REQUIRE(cli.ok());
    Pair p;
    p.start(*srv, *cli, "localhost", true);
    p.run_until([&] { return p.server_done && p.client_done; });
    REQUIRE(p.server_done);
    REQUIRE(p.client_done);
    INFO((p.client_done->ok() ? std::string() : p.client_done->error().what()));
    REQUIRE(p.server_done->ok());
    REQUIRE(p.client_done->ok());
    CHECK(p.server->is_tls());
    CHECK(p.client->tls_description().rfind("TLS1.3 with ", 0) == 0);
    CHECK(p.server->tls_description() == p.client->tls_description());

    std::string data(4 << 20, '\0');
    uint32_t x = 12345;
    for (auto& ch : data) {
        x = x * 1103515245 + 12345;
        ch = static_cast<char>(x >> 24);
    }
    p.client->write(data);
    p.run_until([&] { return p.client_side.got.size() >= data.size() || p.client_side.closed; });
    REQUIRE(p.client_side.got.size() == data.size());
    CHECK(p.client_side.got == data);

    // A clean close: the server sees close_notify as end of stream.
    p.client->close("done");
    p.run_until([&] { return p.server_side.closed; });
    CHECK(p.server_side.close_reason == "connection closed by peer");
}

TEST_CASE("a client verifying the wrong name fails the handshake", "[tls]") {
    TestCert tc;
    auto srv = TlsContext::load(tc.cert, tc.key);
    auto cli = TlsContext::client_context(tc.cert);
    REQUIRE((srv.ok() && cli.ok()));
    Pair p;
    p.start(*srv, *cli, "mail.example.test", true);
    p.run_until([&] { return p.client_done && p.server_done; });
    REQUIRE(p.client_done);
    REQUIRE_FALSE(p.client_done->ok());
    CHECK(p.client_done->error().what().find("TLS handshake failed") != std::string::npos);
    REQUIRE(p.server_done);
    CHECK_FALSE(p.server_done->ok());
}

TEST_CASE("a client given its name as a temporary fails a wrong-name handshake every time", "[tls]") {
    TestCert tc;
    auto srv = TlsContext::load(tc.cert, tc.key);
    auto cli = TlsContext::client_context(tc.cert);
    REQUIRE((srv.ok() && cli.ok()));
    const char wrong[] = "mail.example.test";  // longer than the small-string buffer: on the heap
    for (int i = 0; i < 50; ++i) {
        Pair p;
        p.start(*srv, *cli, std::string(wrong), true);
        // The temporary is gone; an allocation of its size at once takes its memory and writes the
        // name the certificate does carry, so a transport still pointing there would verify "localhost".
        std::string decoy(sizeof wrong - 1, '\0');
        decoy.replace(0, 9, "localhost", 9);
        asm volatile("" : : "r"(decoy.data()) : "memory");  // keep the allocation and its bytes
        p.run_until([&] { return p.client_done && p.server_done; });
        INFO("handshake " << i);
        REQUIRE(p.client_done);
        REQUIRE_FALSE(p.client_done->ok());
        CHECK(p.client_done->error().what().find("TLS handshake failed") != std::string::npos);
    }
}

TEST_CASE("an untrusted certificate is accepted only without verification", "[tls]") {
    TestCert tc, other;
    auto srv = TlsContext::load(tc.cert, tc.key);
    auto cli = TlsContext::client_context(other.cert);  // trusts a different certificate
    REQUIRE((srv.ok() && cli.ok()));
    {
        Pair p;
        p.start(*srv, *cli, "localhost", true);
        p.run_until([&] { return p.client_done && p.server_done; });
        REQUIRE(p.client_done);
        CHECK_FALSE(p.client_done->ok());
    }
    {
        Pair p;
        p.start(*srv, *cli, "localhost", false);  // opportunistic
        p.run_until([&] { return p.client_done && p.server_done; });
        REQUIRE(p.client_done);
        CHECK(p.client_done->ok());
    }
}

TEST_CASE("the idle timer bounds a stalled handshake", "[tls]") {
    TestCert tc;
    auto srv = TlsContext::load(tc.cert, tc.key);
    REQUIRE(srv.ok());
    Pair p;  // the client never starts TLS: it says nothing
    p.server->set_idle_timeout(0.2);
    p.server->start_tls(srv->server(p.server->fd()), [&](Result<void> r) { p.server_done = r; });
    p.run_until([&] { return p.server_side.closed; });
    CHECK(p.server_side.closed);
    CHECK(p.server_side.close_reason == "timeout");
}
