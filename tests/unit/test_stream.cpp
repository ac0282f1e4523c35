// Stream over a socketpair: pause/resume, and a TLS send that waits for readability (no busy loop).
#include <catch.hpp>

#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "common/event/event.hpp"
#include "common/event/net.hpp"
#include "common/event/stream.hpp"

using namespace ferry;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// Records what arrives and how the stream ended.
struct Recorder : Stream::Handler {
    std::string got;
    bool closed = false;
    std::string reason;
    void on_input(Stream& s) noexcept override {
        size_t n = evbuffer_get_length(s.input());
        got.append(reinterpret_cast<const char*>(evbuffer_pullup(s.input(), static_cast<ssize_t>(n))), n);
        evbuffer_drain(s.input(), n);
    }
    void on_close(Stream&, const std::string& why) noexcept override {
        closed = true;
        reason = why;
    }
};

// A stand-in for a TLS session whose send must first read a record from the peer (as a TLS key
// update or renegotiation can): while `send_needs_read`, send() consumes a 'K' byte from the fd if
// one is there, else answers "again, wait for readability". Otherwise plain bytes both ways.
class ReadBlockedTls final : public Transport {
public:
    explicit ReadBlockedTls(int fd) : fd_(fd), plain_(fd) {}
    bool send_needs_read = false;
    IoResult recv(char* buf, size_t len) override { return plain_.recv(buf, len); }
    IoResult send(const char* buf, size_t len) override {
        if (send_needs_read) {
            char c = 0;
            ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK);
            if (n != 1 || c != 'K') return {IoResult::again, 0, false};
            (void)!::recv(fd_, &c, 1, 0);
            send_needs_read = false;
        }
        return plain_.send(buf, len);
    }
    bool is_tls() const override { return true; }

private:
    int fd_;
    PlainTransport plain_;
};

struct Pair {
    EventBase base{event_base_new()};
    int a = -1;
    Fd peer;  // the raw other end
    Pair() {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        a = sv[0];
        peer.reset(sv[1]);
        REQUIRE(net::set_nonblocking(sv[1]).ok());
    }
    void send_peer(const std::string& s) { REQUIRE(::write(peer.get(), s.data(), s.size()) == static_cast<ssize_t>(s.size())); }
    std::string read_peer() {
        char buf[4096];
        ssize_t n = ::read(peer.get(), buf, sizeof buf);
        return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    }
    // Passes through the loop within `span`, with a 50 ms tick so that an idle loop still returns:
    // an idle stream makes a handful; one woken by a readable fd it does not read makes thousands.
    int loop_passes(std::chrono::milliseconds span) {
        EventPtr tick(event_new(base.get(), -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr));
        timeval tv = to_timeval(0.05);
        event_add(tick.get(), &tv);
        int n = 0;
        for (auto end = Clock::now() + span; Clock::now() < end; ++n) event_base_loop(base.get(), EVLOOP_ONCE);
        return n;
    }
    // Runs the loop until `cond` holds or 3 s pass.
    template <class F>
    bool run_until(F cond) {
        EventPtr tick(event_new(base.get(), -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr));
        timeval tv = to_timeval(0.01);
        event_add(tick.get(), &tv);
        for (auto end = Clock::now() + 3s; Clock::now() < end;) {
            if (cond()) return true;
            event_base_loop(base.get(), EVLOOP_ONCE);
        }
        return cond();
    }
};

// Switches `s` to a ReadBlockedTls (its handshake succeeds at once) and returns it.
ReadBlockedTls* go_tls(Stream& s) {
    auto tls = std::make_unique<ReadBlockedTls>(s.fd());
    ReadBlockedTls* raw = tls.get();
    bool ok = false;
    s.start_tls(std::move(tls), [&ok](Result<void> r) { ok = r.ok(); });
    REQUIRE(ok);
    REQUIRE(s.is_tls());
    return raw;
}

}  // namespace

TEST_CASE("two Streams over a socketpair: data flows, and a paused stream holds input back", "[stream]") {
    EventBase base{event_base_new()};
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    Recorder ra, rb;
    Stream a(base.get(), Fd(sv[0]), &ra);
    Stream b(base.get(), Fd(sv[1]), &rb);
    auto run_until = [&](auto cond) {
        for (auto end = Clock::now() + 3s; Clock::now() < end && !cond();) event_base_loop(base.get(), EVLOOP_NONBLOCK);
        return cond();
    };
    a.write("hello\r\n");
    REQUIRE(run_until([&] { return rb.got == "hello\r\n"; }));
    b.pause_input();
    a.write("more\r\n");
    for (int i = 0; i < 50; ++i) event_base_loop(base.get(), EVLOOP_NONBLOCK);
    CHECK(rb.got == "hello\r\n");
    b.resume_input();
    CHECK(run_until([&] { return rb.got == "hello\r\nmore\r\n"; }));
    b.write("reply\r\n");
    b.close("done");
    CHECK(run_until([&] { return ra.got == "reply\r\n" && ra.closed && rb.closed; }));
    CHECK(ra.reason == "connection closed by peer");
}

TEST_CASE("a TLS send waiting for readability resumes when the fd becomes readable", "[stream]") {
    Pair p;
    Recorder r;
    Stream s(p.base.get(), Fd(p.a), &r);
    ReadBlockedTls* tls = go_tls(s);
    tls->send_needs_read = true;
    s.write("250 ok\r\n");
    CHECK(s.output_pending() == 8);
    p.send_peer("K");  // the record the TLS layer waits for
    std::string got;
    CHECK(p.run_until([&] { return (got += p.read_peer()) == "250 ok\r\n"; }));
    CHECK(s.output_pending() == 0);
    CHECK(r.got.empty());  // the record went to the TLS layer, not to the session
    // Input is read as usual afterwards.
    p.send_peer("QUIT\r\n");
    CHECK(p.run_until([&] { return r.got == "QUIT\r\n"; }));
}

TEST_CASE("a paused stream does not wake on a readable fd", "[stream]") {
    Pair p;
    Recorder r;
    Stream s(p.base.get(), Fd(p.a), &r);

    SECTION("paused before the TLS handshake completes") {
        s.pause_input();  // e.g. a password check is running
        p.send_peer("pipelined\r\n");
        go_tls(s);
        CHECK(p.loop_passes(400ms) < 40);
        CHECK(r.got.empty());
    }
    SECTION("paused while a TLS send waits for readability") {
        ReadBlockedTls* tls = go_tls(s);
        s.pause_input();
        tls->send_needs_read = true;
        s.write("334 go on\r\n");
        p.send_peer("K");
        std::string got;
        CHECK(p.run_until([&] { return (got += p.read_peer()) == "334 go on\r\n"; }));
        p.send_peer("next command\r\n");  // readable, but input is paused
        CHECK(p.loop_passes(400ms) < 40);
        CHECK(r.got.empty());
    }
    SECTION("closing while a TLS send waits for readability") {
        ReadBlockedTls* tls = go_tls(s);
        tls->send_needs_read = true;
        s.write("221 bye\r\n");
        s.close("QUIT");
        p.send_peer("K");
        std::string got;
        CHECK(p.run_until([&] { return r.closed; }));
        got += p.read_peer();
        CHECK(got == "221 bye\r\n");
        CHECK(r.reason == "QUIT");
    }
    // Resuming hands over what waited.
    if (!r.closed) {
        s.resume_input();
        CHECK(p.run_until([&] { return !r.got.empty(); }));
    }
}

TEST_CASE("write_owned hands large strings over, in order with copied writes, and frees what is never sent",
          "[stream]") {
    EventBase base{event_base_new()};
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    Recorder ra, rb;
    auto a = std::make_unique<Stream>(base.get(), Fd(sv[0]), &ra);
    Stream b(base.get(), Fd(sv[1]), &rb);
    std::string want;
    for (int i = 0; i < 6; ++i) {
        std::string big(200 * 1024 + i, static_cast<char>('a' + i));
        std::string small = "line " + std::to_string(i) + "\r\n";
        want += big + small + "tiny";
        a->write_owned(std::move(big));
        a->write(small);
        a->write_owned("tiny");  // below the size worth handing over: copied
    }
    for (auto end = Clock::now() + 3s; Clock::now() < end && rb.got.size() < want.size();)
        event_base_loop(base.get(), EVLOOP_NONBLOCK);
    CHECK(rb.got == want);
    // Output still unsent when the stream goes is freed with it (the sanitizers see any leak).
    b.pause_input();
    for (int i = 0; i < 40; ++i) a->write_owned(std::string(256 * 1024, 'z'));
    a.reset();
}

TEST_CASE("a stream reads a large burst in bulk, every octet in order, and small writes as before", "[stream]") {
    Pair p;
    Recorder rec;
    Stream s(p.base.get(), Fd(p.a), &rec);
    std::string burst;
    for (size_t i = 0; burst.size() < (3u << 20); ++i) burst += "line " + std::to_string(i) + " of a large burst\r\n";
    // The writer blocks while the socket buffer is full; the loop below reads meanwhile.
    std::thread writer([&] {
        size_t at = 0;
        while (at < burst.size()) {
            ssize_t n = ::write(p.peer.get(), burst.data() + at, std::min<size_t>(burst.size() - at, 200000));
            if (n > 0) at += static_cast<size_t>(n);
            else if (errno == EAGAIN) std::this_thread::sleep_for(1ms);
            else break;
        }
    });
    bool all = p.run_until([&] { return rec.got.size() >= burst.size(); });
    writer.join();
    REQUIRE(all);
    CHECK(rec.got == burst);
    rec.got.clear();
    p.send_peer("a");
    REQUIRE(p.run_until([&] { return rec.got == "a"; }));
    p.send_peer("bc\r\n");
    CHECK(p.run_until([&] { return rec.got == "abc\r\n"; }));
}
