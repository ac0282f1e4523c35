// The worker pool: work on the workers with every signal blocked, completions on the loop, cancel.
#include <catch.hpp>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/event/event.hpp"
#include "common/event/worker_pool.hpp"

using namespace ferry;

namespace {

// Runs the loop until `done` holds, failing the test after a few seconds instead of hanging.
template <typename Pred>
bool run_until(event_base* base, Pred done) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
        if (std::chrono::steady_clock::now() > end) return false;
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// A job that holds its worker until released, to keep later jobs queued.
struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    std::atomic<bool> entered{false};
    void wait() {
        entered = true;
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return open; });
    }
    void release() {
        {
            std::lock_guard lock(mu);
            open = true;
        }
        cv.notify_all();
    }
};

}  // namespace

TEST_CASE("worker pool: work on workers with signals blocked, completions on the loop", "[event][pool]") {
    EventBase base(event_base_new());
    WorkerPool pool(base.get(), 2);
    CHECK(pool.threads() == 2);
    auto loop_thread = std::this_thread::get_id();
    constexpr int kJobs = 20;
    std::atomic<int> on_loop_thread{0}, signals_blocked{0};
    int completed = 0;  // loop thread only
    std::vector<int> results(kJobs, 0);
    for (int i = 0; i < kJobs; ++i) {
        pool.submit(
            [&, i] {
                sigset_t mask;
                pthread_sigmask(SIG_BLOCK, nullptr, &mask);
                if (sigismember(&mask, SIGTERM) && sigismember(&mask, SIGHUP) && sigismember(&mask, SIGCHLD))
                    ++signals_blocked;
                if (std::this_thread::get_id() == loop_thread) ++on_loop_thread;
                results[static_cast<size_t>(i)] = i * i;
            },
            [&] {
                CHECK(std::this_thread::get_id() == loop_thread);
                ++completed;
            });
    }
    CHECK(completed == 0);  // never inside submit
    REQUIRE(run_until(base.get(), [&] { return completed == kJobs; }));
    CHECK(on_loop_thread == 0);
    CHECK(signals_blocked == kJobs);
    for (int i = 0; i < kJobs; ++i) CHECK(results[static_cast<size_t>(i)] == i * i);
    // The loop thread's own mask is as it was.
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    CHECK_FALSE(sigismember(&mask, SIGTERM));
}

TEST_CASE("worker pool: a queued job can be cancelled, a running one cannot", "[event][pool]") {
    EventBase base(event_base_new());
    WorkerPool pool(base.get(), 1);
    Gate gate;
    bool first_done = false, second_ran = false, second_done = false;
    auto first = pool.submit([&] { gate.wait(); }, [&] { first_done = true; });
    auto second = pool.submit([&] { second_ran = true; }, [&] { second_done = true; });
    REQUIRE(run_until(base.get(), [&] { return gate.entered.load(); }));
    CHECK(pool.queued() == 1);
    CHECK_FALSE(pool.cancel(first));  // already running: its completion still comes
    CHECK(pool.cancel(second));
    CHECK_FALSE(pool.cancel(second));
    CHECK(pool.queued() == 0);
    gate.release();
    REQUIRE(run_until(base.get(), [&] { return first_done; }));
    event_base_loop(base.get(), EVLOOP_NONBLOCK);
    CHECK_FALSE(second_ran);
    CHECK_FALSE(second_done);
}

TEST_CASE("worker pool: destruction drops queued jobs and pending completions", "[event][pool]") {
    EventBase base(event_base_new());
    auto captured = std::make_shared<int>(0);
    bool done_ran = false;
    Gate gate;
    std::thread releaser;
    {
        WorkerPool pool(base.get(), 1);
        pool.submit([&] { gate.wait(); }, [&] { done_ran = true; });
        pool.submit([captured] { ++*captured; }, [&] { done_ran = true; });
        REQUIRE(run_until(base.get(), [&] { return gate.entered.load(); }));
        REQUIRE(pool.queued() == 1);
        // The one worker is held, so only the destructor empties the queue: then the held job may end.
        releaser = std::thread([&] {
            while (pool.queued() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            gate.release();
        });
    }
    releaser.join();
    event_base_loop(base.get(), EVLOOP_NONBLOCK);
    CHECK(*captured == 0);
    CHECK(captured.use_count() == 1);  // the dropped job's captures are gone
    CHECK_FALSE(done_ran);
}
