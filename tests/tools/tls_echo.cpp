// tls-echo: a test-only TCP echo server over TLS (implicit, or after "STARTTLS" with -s).
//
// usage: tls-echo [-c ferry.conf] [-o key=value]... [-l host:port] [-s]
// Reads tls_cert_file, tls_key_file, tls_handshake_timeout and mail_user. Logs
// "listening on echo ADDR" and "ready" like a daemon, then echoes every byte it receives.
// With -s a connection starts in the clear: it is greeted "220 tls-echo ready", lines are
// echoed, and the line "STARTTLS" is answered "220 go ahead" before the handshake; bytes the
// client pipelined after STARTTLS are discarded (Stream::start_tls), never echoed.
#include <event2/listener.h>
#include <signal.h>
#include <sysexits.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/program/config.hpp"
#include "common/program/daemon.hpp"
#include "common/event/event.hpp"
#include "common/base/log.hpp"
#include "common/event/net.hpp"
#include "common/program/privs.hpp"
#include "common/event/stream.hpp"
#include "common/event/tls.hpp"
#include "common/program/tls_config.hpp"

namespace {

using namespace ferry;

struct Server;

struct Session final : Stream::Handler {
    Server& server;
    std::unique_ptr<Stream> stream;
    bool plaintext;  // -s mode before STARTTLS

    Session(Server& s, Fd fd, bool starttls_mode);
    void begin_tls();
    void on_input(Stream& s) noexcept override;
    void on_close(Stream& s, const std::string& reason) noexcept override;
    void on_plain_line(const std::string& line);
};

struct Server {
    event_base* base;
    TlsContext tls;
    double handshake_timeout;
    bool starttls_mode;
    std::unordered_map<Session*, std::unique_ptr<Session>> sessions;
};

Session::Session(Server& s, Fd fd, bool starttls_mode) : server(s), plaintext(starttls_mode) {
    stream = std::make_unique<Stream>(s.base, std::move(fd), this);
    if (plaintext) stream->write("220 tls-echo ready\r\n");
    else begin_tls();
}

void Session::begin_tls() {
    plaintext = false;
    // The idle timer bounds the handshake; after it, the echo has no idle limit.
    stream->set_idle_timeout(server.handshake_timeout);
    stream->start_tls(server.tls.server(stream->fd()), [this](Result<void> r) {
        if (!r) {
            log::warnx("%s: %s", stream->peer().c_str(), r.error().what().c_str());
            return;  // on_close follows
        }
        stream->set_idle_timeout(0);
        log::info("%s: TLS established: %s", stream->peer().c_str(), stream->tls_description().c_str());
    });
}

void Session::on_plain_line(const std::string& line) {
    if (line == "STARTTLS") {
        stream->write("220 go ahead\r\n");
        begin_tls();
        return;
    }
    stream->write(line + "\r\n");
}

void Session::on_input(Stream& s) noexcept {
    if (!plaintext) {
        size_t n = evbuffer_get_length(s.input());
        std::string chunk(n, '\0');
        evbuffer_remove(s.input(), chunk.data(), n);
        s.write(chunk);
        return;
    }
    while (plaintext) {
        size_t len = 0;
        char* line = evbuffer_readln(s.input(), &len, EVBUFFER_EOL_CRLF);
        if (!line) return;
        std::string l(line, len);
        free(line);
        on_plain_line(l);
    }
}

void Session::on_close(Stream& s, const std::string& reason) noexcept {
    log::info("%s: closed: %s", s.peer().c_str(), reason.c_str());
    server.sessions.erase(this);  // destroys this session and its stream
}

void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
    auto* server = static_cast<Server*>(arg);
    auto session = std::make_unique<Session>(*server, Fd(fd), server->starttls_mode);
    Session* key = session.get();
    server->sessions.emplace(key, std::move(session));
}

[[noreturn]] void usage() {
    fprintf(stderr, "usage: tls-echo [-c ferry.conf] [-o key=value]... [-l host:port] [-s]\n");
    exit(EX_USAGE);
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path, listen = "127.0.0.1:0";
    bool starttls_mode = false;
    std::vector<std::string> overrides;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-c" && i + 1 < argc) config_path = argv[++i];
        else if (a == "-o" && i + 1 < argc) overrides.push_back(argv[++i]);
        else if (a == "-l" && i + 1 < argc) listen = argv[++i];
        else if (a == "-s") starttls_mode = true;
        else usage();
    }
    Config config = Config::defaults("smtpd");
    if (!config_path.empty()) {
        auto c = Config::load(config_path, "smtpd");
        if (!c) {
            fprintf(stderr, "tls-echo: %s\n", c.error().what().c_str());
            return EX_CONFIG;
        }
        config = std::move(c.value());
    }
    for (const auto& kv : overrides) {
        size_t eq = kv.find('=');
        if (eq == std::string::npos) usage();
        if (auto r = config.set(kv.substr(0, eq), kv.substr(eq + 1)); !r) {
            fprintf(stderr, "tls-echo: -o %s: %s\n", kv.c_str(), r.error().what().c_str());
            return EX_USAGE;
        }
    }
    log::init("tls-echo", "stderr", config.str("log_level"));
    signal(SIGPIPE, SIG_IGN);

    auto tls = tls_from_config(config);
    if (!tls) {
        log::errorx("%s", tls.error().what().c_str());
        return EX_CONFIG;
    }
    if (!tls.value()) {
        log::errorx("tls_cert_file is not set");
        return EX_CONFIG;
    }
    auto fd = net::listen_tcp(listen);
    if (!fd) {
        log::errorx("%s", fd.error().what().c_str());
        return EX_TEMPFAIL;
    }
    if (auto r = drop_privileges(config); !r) {
        log::errorx("%s", r.error().what().c_str());
        return EX_TEMPFAIL;
    }
    EventBase base(event_base_new());
    Server server{base.get(), *tls.value(), static_cast<double>(config.duration("tls_handshake_timeout").count()),
                  starttls_mode, {}};
    log::info("listening on echo %s", net::local_address(fd->get()).c_str());
    Listener listener(evconnlistener_new(base.get(), on_accept, &server, LEV_OPT_CLOSE_ON_FREE, -1, fd->release()));
    auto signals = install_signal_handlers(base.get());
    log::info("ready");
    event_base_dispatch(base.get());
    server.sessions.clear();
    log::info("stopped");
    return 0;
}
