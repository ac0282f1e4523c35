// SessionSet: the server skeleton every daemon shares: accepts on its listeners under a total and a
// per-address session limit, owns the sessions, ends them at their lifetime, reaps them, stops gracefully.
//
// Use:
//   SessionSet set(base, {.max_sessions = 1000, .max_per_address = 50, .lifetime = 3600},
//                  [this](SessionSet::Accepted& a) { return std::make_unique<Session>(*this, std::move(a.fd), a.id); },
//                  [this](const SessionSet::Accepted& a, SessionSet::Refusal why) { answer_refusal(a, why); });
//   set.listen(std::move(fd), "smtp 127.0.0.1:25", kind);
//   set.enable();
// and each session calls set.release(this) from its on_close.
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"
#include "common/event/event.hpp"
#include "common/event/listener.hpp"

namespace ferry {

// What a session owned by a SessionSet must answer to.
class ServedSession {
public:
    virtual ~ServedSession() = default;
    // The session has lived its lifetime: tell the peer and close (release follows from on_close).
    virtual void on_lifetime_expired() = 0;
    // The server is stopping: finish what is in progress, then close.
    virtual void on_stop() = 0;
};

struct SessionLimits {
    size_t max_sessions = 0;     // all sessions together; 0: no limit
    size_t max_per_address = 0;  // sessions from one peer address (TCP only); 0: no limit
    double lifetime = 0;         // seconds from accept to a forced end; 0: no limit
};

class SessionSet {
public:
    // A connection just accepted. `address` is the peer's host ("127.0.0.2", "::1"), empty for a
    // Unix-socket peer; `id` names the session on every log line (prefix, start time, counter).
    struct Accepted {
        Fd fd;
        std::string address;
        int tag = 0;  // the listener's, e.g. which port kind
        std::string id;
    };
    enum class Refusal { total, per_address };

    using Factory = std::function<std::unique_ptr<ServedSession>(Accepted& accepted)>;
    // Logs and answers (best effort, non-blocking) a refused connection; the set closes it after.
    using Refuse = std::function<void(const Accepted& accepted, Refusal why)>;

    SessionSet(event_base* base, SessionLimits limits, std::string id_prefix, Factory make, Refuse refuse);
    ~SessionSet();
    SessionSet(const SessionSet&) = delete;
    SessionSet& operator=(const SessionSet&) = delete;

    // Accepts on the listening socket `fd` once enable() is called; `name` ("smtp 127.0.0.1:25")
    // goes into log lines, `tag` into each Accepted.
    Result<void> listen(Fd fd, std::string name, int tag = 0);
    void enable();
    void disable();

    // Called by a session once its connection is gone (its on_close): it stops counting at once
    // and is destroyed from the loop, after the caller has returned.
    void release(ServedSession* session);

    // Stops accepting and calls on_stop() on every session; `done` runs from the loop once all are
    // released, or after `grace` seconds, when the rest are destroyed.
    void stop(double grace, std::function<void()> done);

    size_t size() const { return sessions_.size(); }
    size_t count(const std::string& address) const;
    const SessionLimits& limits() const { return limits_; }

    struct Entry;
    struct Bound;

private:
    static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* arg) noexcept;
    static void on_lifetime(evutil_socket_t, short, void* arg) noexcept;
    static void on_reap(evutil_socket_t, short, void* arg) noexcept;
    static void on_grace(evutil_socket_t, short, void* arg) noexcept;
    void accept(Fd fd, const sockaddr* sa, int tag);
    std::string next_id();
    void check_stopped();
    void finish_stop();

    event_base* base_;
    SessionLimits limits_;
    std::string id_prefix_;
    Factory make_;
    Refuse refuse_;
    std::vector<std::unique_ptr<Bound>> listeners_;
    std::unordered_map<ServedSession*, std::unique_ptr<Entry>> sessions_;
    std::unordered_map<std::string, size_t> per_address_;
    std::vector<std::unique_ptr<Entry>> dead_;  // released, destroyed by on_reap
    EventPtr reap_ev_;
    EventPtr grace_ev_;
    std::function<void()> stopped_;
    bool stopping_ = false;
    unsigned long long counter_ = 0;
};

}  // namespace ferry
