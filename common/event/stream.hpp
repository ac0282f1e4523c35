// Stream: one non-blocking connection on the event loop, plain or TLS, with buffered I/O.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/event/event.hpp"
#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry {

struct IoResult {
    enum Status { ok, again, eof, error };
    Status status = ok;
    size_t n = 0;             // bytes moved when ok
    bool want_write = false;  // when again: wait for the fd to become writable, not readable
    std::string error_text;   // when error
};

// Moves bytes between a Stream's buffers and its fd: plain syscalls, or a TLS session.
class Transport {
public:
    virtual ~Transport() = default;
    virtual IoResult handshake() { return {}; }
    virtual IoResult recv(char* buf, size_t len) = 0;
    virtual IoResult send(const char* buf, size_t len) = 0;
    // Bytes already decrypted inside the transport, which no fd event will announce.
    virtual size_t pending() const { return 0; }
    virtual void shutdown() {}
    virtual bool is_tls() const { return false; }
    // "TLS1.3 with AES-256-GCM" for Received: headers and logs.
    virtual std::string describe() const { return ""; }
};

class PlainTransport final : public Transport {
public:
    explicit PlainTransport(int fd) : fd_(fd) {}
    IoResult recv(char* buf, size_t len) override;
    IoResult send(const char* buf, size_t len) override;

private:
    int fd_;
};

class Stream {
public:
    class Handler {
    public:
        virtual ~Handler() = default;
        // New bytes are in stream.input(); consume what forms whole units.
        virtual void on_input(Stream& stream) noexcept = 0;
        // The connection is gone; called once, from the loop. The handler may destroy the stream here.
        virtual void on_close(Stream& stream, const std::string& reason) noexcept = 0;
        // The idle timer fired; the default closes the connection.
        virtual void on_timeout(Stream& stream) noexcept { close_on_timeout(stream); }
        // Unsent output fell to the low-water mark (set_output_low_water); called from the loop.
        virtual void on_output_low(Stream&) noexcept {}

    protected:
        static void close_on_timeout(Stream& stream);
    };

    Stream(event_base* base, Fd fd, Handler* handler);
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    evbuffer* input() { return input_.get(); }
    void write(std::string_view data);
    // The same for a large output built for one write: the buffer takes the string over instead of
    // copying it, and frees it once sent (a small one is copied as write() does).
    void write_owned(std::string data);
    size_t output_pending() const;

    // Closes after the output is flushed; on_close follows from the loop.
    void close(std::string reason);
    // Closes at once, dropping unsent output; on_close follows from the loop.
    void abort(std::string reason);
    bool closing() const { return state_ == State::closing || state_ == State::closed; }

    // Seconds of silence from the peer before on_timeout; 0 disables.
    void set_idle_timeout(double seconds);
    // After output rose above `bytes`, on_output_low follows once it has drained back to `bytes`:
    // a session producing a large reply pauses its input until the peer has read enough.
    void set_output_low_water(size_t bytes) { low_water_ = bytes; }
    // Stop and restart delivering input (while an asynchronous step, like a password check, runs).
    void pause_input();
    void resume_input();

    // Switches to `tls` after the pending output is flushed in the clear. Buffered input is
    // discarded first: bytes pipelined before the handshake must not count (STARTTLS injection).
    void start_tls(std::unique_ptr<Transport> tls, std::function<void(Result<void>)> done);
    bool is_tls() const { return transport_->is_tls(); }
    std::string tls_description() const { return transport_->describe(); }

    int fd() const { return fd_.get(); }
    const std::string& peer() const { return peer_; }
    bool peer_is_loopback() const { return peer_loopback_; }
    event_base* base() const { return base_; }

private:
    enum class State { open, tls_pending, handshaking, closing, closed };

    static void on_read_event(evutil_socket_t, short, void* arg) noexcept;
    static void on_write_event(evutil_socket_t, short, void* arg) noexcept;
    static void on_timer_event(evutil_socket_t, short, void* arg) noexcept;
    static void on_deferred_event(evutil_socket_t, short, void* arg) noexcept;

    void do_read();
    void do_flush();
    void update_read_event(bool lazy = true);
    void note_drained();
    void step_handshake();
    void finish(std::string reason);
    void arm_timer();
    void schedule();

    event_base* base_;
    Fd fd_;
    Handler* handler_;
    std::unique_ptr<Transport> transport_;
    std::unique_ptr<Transport> next_transport_;
    std::function<void(Result<void>)> tls_done_;
    EvBuffer input_;
    EvBuffer output_;
    EventPtr read_ev_, write_ev_, timer_ev_, deferred_ev_;
    State state_ = State::open;
    std::string close_reason_;
    bool paused_ = false;
    // A TLS send waits for the fd to become readable (gnutls_record_get_direction() == 0): the read
    // event then serves the flush, even while input is paused.
    bool flush_wants_read_ = false;
    bool close_notified_ = false;
    size_t low_water_ = 0;
    bool above_low_water_ = false;
    bool notify_low_water_ = false;
    double idle_timeout_ = 0;
    std::string peer_;
    bool peer_loopback_ = false;
};

}  // namespace ferry
