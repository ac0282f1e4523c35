// Runs a function later on an event loop, from a clean stack.
#pragma once

#include <event2/event.h>

#include <functional>

namespace ferry {

// Queues `fn` to run on `base`'s next turn, even when what queued it is gone by then (the one-shot
// event frees itself). For callbacks that must never run inside the call that produced them.
void post(event_base* base, std::function<void()> fn);

}  // namespace ferry
