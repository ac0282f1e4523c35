// Stream: one non-blocking connection on the event loop, plain or TLS, with buffered I/O.
#include "common/event/stream.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/event/net.hpp"

namespace ferry {

namespace {
constexpr size_t kReadChunk = 16384;
// Once a read fills kReadChunk, more is streaming in (a message body): later reads of the same
// turn go straight into the input buffer's own space, this much at a time, with no copy.
constexpr size_t kBulkRead = 65536;
constexpr size_t kMaxBufferedInput = 1 << 20;  // stop reading while the handler lags this far behind
}  // namespace

IoResult PlainTransport::recv(char* buf, size_t len) {
    for (;;) {
        ssize_t n = ::recv(fd_, buf, len, 0);
        if (n > 0) return {IoResult::ok, static_cast<size_t>(n)};
        if (n == 0) return {IoResult::eof};
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoResult::again};
        return {IoResult::error, 0, false, std::strerror(errno)};
    }
}

IoResult PlainTransport::send(const char* buf, size_t len) {
    for (;;) {
        ssize_t n = ::send(fd_, buf, len, MSG_NOSIGNAL);
        if (n >= 0) return {IoResult::ok, static_cast<size_t>(n)};
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoResult::again, 0, true};
        return {IoResult::error, 0, false, std::strerror(errno)};
    }
}

void Stream::Handler::close_on_timeout(Stream& stream) { stream.close("idle timeout"); }

Stream::Stream(event_base* base, Fd fd, Handler* handler)
    : base_(base), fd_(std::move(fd)), handler_(handler), input_(evbuffer_new()), output_(evbuffer_new()) {
    (void)net::set_nonblocking(fd_.get());
    transport_ = std::make_unique<PlainTransport>(fd_.get());
    peer_ = net::peer_address(fd_.get(), &peer_loopback_);
    read_ev_.reset(event_new(base, fd_.get(), EV_READ | EV_PERSIST, on_read_event, this));
    write_ev_.reset(event_new(base, fd_.get(), EV_WRITE, on_write_event, this));
    timer_ev_.reset(evtimer_new(base, on_timer_event, this));
    deferred_ev_.reset(event_new(base, -1, 0, on_deferred_event, this));
    event_add(read_ev_.get(), nullptr);
}

Stream::~Stream() {
    // Events are freed (and so removed) before the fd closes.
    read_ev_.reset();
    write_ev_.reset();
    timer_ev_.reset();
    deferred_ev_.reset();
}

void Stream::write(std::string_view data) {
    if (state_ == State::closing || state_ == State::closed) return;
    evbuffer_add(output_.get(), data.data(), data.size());
    if (output_pending() > low_water_) above_low_water_ = true;
    if (state_ == State::open) do_flush();
}

void Stream::write_owned(std::string data) {
    constexpr size_t kOwnedAtLeast = 16 * 1024;  // below this a copy costs less than the bookkeeping
    if (state_ == State::closing || state_ == State::closed) return;
    if (data.size() < kOwnedAtLeast) return write(data);
    auto* held = new std::string(std::move(data));
    auto release = [](const void*, size_t, void* arg) { delete static_cast<std::string*>(arg); };
    if (evbuffer_add_reference(output_.get(), held->data(), held->size(), release, held) != 0) {
        write(*held);
        delete held;
        return;
    }
    if (output_pending() > low_water_) above_low_water_ = true;
    if (state_ == State::open) do_flush();
}

size_t Stream::output_pending() const { return evbuffer_get_length(output_.get()); }

void Stream::close(std::string reason) {
    if (state_ == State::closing || state_ == State::closed) return;
    if (state_ != State::open || output_pending() == 0) {
        finish(std::move(reason));
        return;
    }
    state_ = State::closing;
    close_reason_ = std::move(reason);
    event_del(read_ev_.get());
    do_flush();
}

void Stream::abort(std::string reason) {
    if (state_ == State::closed) return;
    evbuffer_drain(output_.get(), output_pending());
    finish(std::move(reason));
}

void Stream::finish(std::string reason) {
    if (state_ == State::closed) return;
    if (state_ == State::open || state_ == State::closing) transport_->shutdown();
    state_ = State::closed;
    close_reason_ = std::move(reason);
    flush_wants_read_ = false;
    event_del(read_ev_.get());
    event_del(write_ev_.get());
    event_del(timer_ev_.get());
    ::shutdown(fd_.get(), SHUT_RDWR);
    schedule();
}

void Stream::set_idle_timeout(double seconds) {
    idle_timeout_ = seconds;
    arm_timer();
}

void Stream::arm_timer() {
    if (state_ == State::closed) return;
    if (idle_timeout_ <= 0) {
        event_del(timer_ev_.get());
        return;
    }
    timeval tv = to_timeval(idle_timeout_);
    event_add(timer_ev_.get(), &tv);
}

void Stream::pause_input() {
    paused_ = true;
    if (state_ == State::open) update_read_event();
}

void Stream::resume_input() {
    if (!paused_) return;
    paused_ = false;
    if (state_ == State::open) {
        update_read_event();
        schedule();  // bytes that arrived while paused are handed over from a clean stack
    }
}

// The read event is armed while input is wanted (open, not paused, below the buffer limit) or a flush
// waits for readability; otherwise a readable fd that nobody reads would wake the loop forever.
// While handshaking, step_handshake arms it itself. A pause leaves it armed (`lazy`) until input
// comes while paused (on_read_event disarms it then): a client that waits for its reply sends
// none, and so a pause and resume per command costs no epoll_ctl.
void Stream::update_read_event(bool lazy) {
    if (state_ == State::handshaking) return;
    bool below_limit = evbuffer_get_length(input_.get()) < kMaxBufferedInput;
    bool want = flush_wants_read_;
    if (state_ == State::open && !paused_ && below_limit) want = true;
    if (state_ == State::closed) want = false;
    bool may_stay = lazy && state_ == State::open && paused_ && below_limit;
    if (want) event_add(read_ev_.get(), nullptr);
    else if (!may_stay) event_del(read_ev_.get());
}

void Stream::schedule() { event_active(deferred_ev_.get(), 0, 0); }

void Stream::start_tls(std::unique_ptr<Transport> tls, std::function<void(Result<void>)> done) {
    evbuffer_drain(input_.get(), evbuffer_get_length(input_.get()));
    next_transport_ = std::move(tls);
    tls_done_ = std::move(done);
    state_ = State::tls_pending;
    event_del(read_ev_.get());
    do_flush();
}

void Stream::step_handshake() {
    IoResult r = transport_->handshake();
    if (r.status == IoResult::again) {
        if (r.want_write) event_add(write_ev_.get(), nullptr);
        else event_add(read_ev_.get(), nullptr);
        return;
    }
    auto done = std::move(tls_done_);
    if (r.status != IoResult::ok) {
        std::string why = "TLS handshake failed: " + (r.error_text.empty() ? std::string("connection closed") : r.error_text);
        finish(why);
        if (done) done(make_error(0, "", why));
        return;
    }
    state_ = State::open;
    arm_timer();
    update_read_event();  // not while the session has paused its input
    if (done) done(Result<void>{});
    if (state_ == State::open) {
        do_flush();
        if (transport_->pending() > 0) schedule();
    }
}

void Stream::do_read() {
    if (paused_) return;
    // A short read is copied from the stack, so a line trickling in holds a small buffer, not kBulkRead.
    char buf[kReadChunk];
    bool got = false, bulk = false;
    for (;;) {
        if (evbuffer_get_length(input_.get()) >= kMaxBufferedInput) break;
        IoResult r;
        bool full = false;
        if (bulk) {
            evbuffer_iovec space;
            if (evbuffer_reserve_space(input_.get(), kBulkRead, &space, 1) < 1) {
                r = {IoResult::error, 0, false, "out of memory"};
            } else {
                size_t want = std::min(space.iov_len, kBulkRead);
                r = transport_->recv(static_cast<char*>(space.iov_base), want);
                if (r.status == IoResult::ok) {
                    space.iov_len = r.n;
                    evbuffer_commit_space(input_.get(), &space, 1);
                    // A TLS read ends at a record (16 KB at most): a whole one says more may follow.
                    full = r.n == want || (transport_->is_tls() && r.n >= kReadChunk);
                }
            }
        } else {
            r = transport_->recv(buf, sizeof buf);
            if (r.status == IoResult::ok) {
                evbuffer_add(input_.get(), buf, r.n);
                full = r.n == sizeof buf;
            }
        }
        if (r.status == IoResult::ok) {
            got = true;
            if (!full && transport_->pending() == 0) break;
            bulk = full;
            continue;
        }
        if (r.status == IoResult::again) break;
        if (got) handler_->on_input(*this);
        finish(r.status == IoResult::eof ? "connection closed by peer" : "read error: " + r.error_text);
        return;
    }
    if (got) {
        arm_timer();
        handler_->on_input(*this);
    }
    // A handler that cannot consume a full buffer has its own limits to enforce; until then, read no more.
    if (state_ == State::open) update_read_event();
}

void Stream::do_flush() {
    bool waited_for_read = std::exchange(flush_wants_read_, false);
    while (output_pending() > 0) {
        size_t len = evbuffer_get_contiguous_space(output_.get());
        const char* data = reinterpret_cast<const char*>(evbuffer_pullup(output_.get(), static_cast<ssize_t>(len)));
        IoResult r = transport_->send(data, len);
        if (r.status == IoResult::ok) {
            evbuffer_drain(output_.get(), r.n);
            continue;
        }
        if (r.status == IoResult::again) {
            if (r.want_write) event_add(write_ev_.get(), nullptr);
            else flush_wants_read_ = true;
            if (waited_for_read || flush_wants_read_) update_read_event();
            note_drained();
            return;
        }
        evbuffer_drain(output_.get(), output_pending());
        finish("write error: " + r.error_text);
        return;
    }
    if (waited_for_read) update_read_event();
    note_drained();
    if (state_ == State::closing) {
        finish(close_reason_);
    } else if (state_ == State::tls_pending) {
        transport_ = std::move(next_transport_);
        state_ = State::handshaking;
        step_handshake();
    }
}

void Stream::note_drained() {
    if (!above_low_water_ || output_pending() > low_water_) return;
    above_low_water_ = false;
    notify_low_water_ = true;
    schedule();  // the handler hears of it from a clean stack, never from inside write()
}

void Stream::on_read_event(evutil_socket_t, short, void* arg) noexcept {
    auto* s = static_cast<Stream*>(arg);
    if (s->state_ == State::handshaking) return s->step_handshake();
    if (s->flush_wants_read_) {
        s->do_flush();  // sets the flag again if TLS still waits
        if (s->state_ == State::closed) return;
    }
    if (s->state_ == State::open && !s->paused_) s->do_read();
    else s->update_read_event(false);
}

void Stream::on_write_event(evutil_socket_t, short, void* arg) noexcept {
    auto* s = static_cast<Stream*>(arg);
    if (s->state_ == State::handshaking) return s->step_handshake();
    s->do_flush();
}

void Stream::on_timer_event(evutil_socket_t, short, void* arg) noexcept {
    auto* s = static_cast<Stream*>(arg);
    if (s->state_ == State::open) s->handler_->on_timeout(*s);
    else if (s->state_ != State::closed) s->abort("timeout");
}

void Stream::on_deferred_event(evutil_socket_t, short, void* arg) noexcept {
    auto* s = static_cast<Stream*>(arg);
    if (s->state_ == State::closed) {
        if (s->close_notified_) return;
        s->close_notified_ = true;
        s->handler_->on_close(*s, s->close_reason_);  // may destroy s
        return;
    }
    if (s->state_ == State::open && s->notify_low_water_) {
        s->notify_low_water_ = false;
        s->handler_->on_output_low(*s);
        if (s->state_ != State::open) return;
    }
    if (s->state_ == State::open && !s->paused_) {
        if (s->transport_->pending() > 0) s->do_read();
        else if (evbuffer_get_length(s->input_.get()) > 0) s->handler_->on_input(*s);
    }
}

}  // namespace ferry
