// Fuzz target: one whole LMTP session (common/smtp/lmtp_server) over a socketpair, behind an
// in-memory backend; the input is the client's bytes.
//
// The backend accepts every recipient but nobody@..., and answers after the final dot from the
// loop (as a real one may, later) with 250 per recipient. Checked: every reply line is a
// well-formed reply, the backend sees MAIL before RCPT and LF line ends, the owner hears of the
// close, no hang; ASan finds leaks.
#include <event2/event.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "common/base/log.hpp"
#include "common/event/event.hpp"
#include "common/smtp/lmtp_server.hpp"
#include "tests/fuzz/session_driver.hpp"

using namespace ferry;

namespace {

class MemoryBackend final : public smtp::LmtpBackend {
public:
    explicit MemoryBackend(event_base* base) : timer_(evtimer_new(base, on_timer, this)) {}

    void begin(std::string_view) override { in_transaction_ = true; }
    std::optional<Error> recipient(std::string_view address) override {
        if (!in_transaction_) std::abort();  // RCPT only after MAIL
        if (address.substr(0, 7) == "nobody@") return make_error(550, "5.1.1", "No such user here");
        ++recipients_;
        return std::nullopt;
    }
    void data_start() override { size_ = 0; }
    void data(std::string_view chunk) override {
        if (chunk.find("\r\n") != std::string_view::npos) std::abort();  // the backend gets LF line ends
        size_ += chunk.size();
    }
    void end_of_data(const std::optional<Error>& refused, ReplyFn done) override {
        if (recipients_ == 0) std::abort();  // DATA needs a recipient
        refused_ = refused;
        done_ = std::move(done);
        timeval now{0, 0};
        evtimer_add(timer_.get(), &now);
    }
    void reset() override {
        evtimer_del(timer_.get());
        done_ = nullptr;
        in_transaction_ = false;
        recipients_ = 0;
    }

private:
    static void on_timer(evutil_socket_t, short, void* arg) noexcept {
        auto* self = static_cast<MemoryBackend*>(arg);
        // The last reply resets this backend: what the replies need is taken first.
        size_t count = self->recipients_;
        std::optional<Error> refused = self->refused_;
        std::string ok = "Ok: " + std::to_string(self->size_) + " bytes";
        auto done = std::move(self->done_);
        self->done_ = nullptr;
        for (size_t i = 0; done && i < count; ++i) {
            if (refused) done(*refused);
            else done(ok);
        }
    }

    EventPtr timer_;
    bool in_transaction_ = false;
    size_t recipients_ = 0;
    uint64_t size_ = 0;
    std::optional<Error> refused_;
    ReplyFn done_;
};

struct Owner final : smtp::LmtpSession::Owner {
    bool closed = false;
    void session_closed(smtp::LmtpSession*) override { closed = true; }
};

struct World {
    EventBase base{event_base_new()};
    smtp::LmtpSessionSettings settings;
    uint64_t sessions = 0;
};

World& world() {
    // Destroyed at exit (the account database closed), before the temp dir it made is removed.
    static std::unique_ptr<World> w = [] {
        log::init("fuzz-lmtp-session", "stderr", "error");
        auto w = std::make_unique<World>();
        w->settings.hostname = "mda.example.test";
        w->settings.timeout = 30;
        w->settings.max_recipients = 4;  // small limits, so the fuzzer reaches them
        w->settings.message_size_limit = 2048;
        w->settings.limits.max_command_length = 512;
        w->settings.data_limits = {2048, 1000, 1024};
        return w;
    }();
    return *w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    World& w = world();
    auto pair = fuzz::socket_pair();
    Owner owner;
    auto session = std::make_unique<smtp::LmtpSession>(w.base.get(), std::move(pair.server), "L" + std::to_string(++w.sessions), w.settings,
                                                       std::make_unique<MemoryBackend>(w.base.get()), owner);
    std::string out = fuzz::drive(w.base.get(), pair.client,
                                  std::string_view(reinterpret_cast<const char*>(data), size));
    if (!owner.closed) {
        std::fprintf(stderr, "lmtp session fuzzer: the connection ended but the owner was not told\n");
        std::abort();
    }
    session.reset();
    fuzz::check_smtp_replies(out, "lmtp");
    if (out.compare(0, 4, "220 ") != 0) {
        std::fprintf(stderr, "lmtp session fuzzer: no 220 greeting first\n");
        std::abort();
    }
    return 0;
}
