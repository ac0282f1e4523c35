// RAII owners for libevent handles, so no event outlives its session.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <memory>

namespace ferry {

template <auto Fn>
struct CDeleter {
    template <class T>
    void operator()(T* p) const { if (p) Fn(p); }
};

using EventBase = std::unique_ptr<event_base, CDeleter<event_base_free>>;
using EventPtr = std::unique_ptr<event, CDeleter<event_free>>;
using EvBuffer = std::unique_ptr<evbuffer, CDeleter<evbuffer_free>>;
using Listener = std::unique_ptr<evconnlistener, CDeleter<evconnlistener_free>>;

inline timeval to_timeval(double seconds) {
    timeval tv;
    tv.tv_sec = static_cast<long>(seconds);
    tv.tv_usec = static_cast<long>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
    return tv;
}

}  // namespace ferry
