// Runs a function later on an event loop, from a clean stack.
#include "common/event/post.hpp"

#include <memory>

#include "common/base/log.hpp"

namespace ferry {

void post(event_base* base, std::function<void()> fn) {
    auto* heap = new std::function<void()>(std::move(fn));
    timeval now{0, 0};
    auto run = [](evutil_socket_t, short, void* arg) noexcept {
        std::unique_ptr<std::function<void()>> f(static_cast<std::function<void()>*>(arg));
        (*f)();
    };
    if (event_base_once(base, -1, EV_TIMEOUT, run, heap, &now) != 0) {
        log::errorx("cannot schedule a callback on the event loop");
        delete heap;
    }
}

}  // namespace ferry
