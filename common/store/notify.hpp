// FolderWatcher: tells the sessions of one process, within a moment, that a folder changed (inotify, ferry-mailstore(5)).
#pragma once

#include <event2/event.h>

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/base/fd.hpp"
#include "common/event/event.hpp"

namespace ferry::store {

// Something that wants to hear of changes to a folder (an IDLEing IMAP session).
class FolderListener {
public:
    virtual ~FolderListener() = default;
    // Something in the folder changed (a delivery, an expunge, a flag); called from the loop, after
    // a burst of changes has settled for the watcher's coalescing delay.
    virtual void on_folder_changed() noexcept = 0;
};

struct WatcherOptions {
    double coalesce = 0.05;     // seconds from the first event of a burst to the notification
    double poll_interval = 5;   // seconds between notifications of folders inotify cannot watch
    bool use_inotify = true;    // false: every folder is polled (tests of the fallback)
};

class FolderWatcher;
struct WatchedFolder;

// One listener's interest in one folder; dropping it stops the notifications (RAII).
class FolderWatch {
public:
    FolderWatch() = default;
    FolderWatch(FolderWatch&& o) noexcept;
    FolderWatch& operator=(FolderWatch&& o) noexcept;
    FolderWatch(const FolderWatch&) = delete;
    FolderWatch& operator=(const FolderWatch&) = delete;
    ~FolderWatch() { reset(); }
    void reset();
    bool active() const { return watcher_ != nullptr; }

private:
    friend class FolderWatcher;
    FolderWatch(FolderWatcher* w, WatchedFolder* f, FolderListener* l) : watcher_(w), folder_(f), listener_(l) {}
    // Pointers, not the folder's name: thousands of sessions hold one of these.
    FolderWatcher* watcher_ = nullptr;
    WatchedFolder* folder_ = nullptr;
    FolderListener* listener_ = nullptr;
};

// A folder being watched, shared by its listeners.
struct WatchedFolder {
    std::string key;                        // the Maildir path
    std::vector<int> wds;                   // new/, cur/, the folder (empty: polled)
    std::vector<FolderListener*> listeners; // nullptr: removed while notifying
    bool dirty = false;
    size_t dispatching = 0;
};

// One per process, on its event loop: one inotify fd; per watched folder one watch on each of new/,
// cur/ and the folder itself (its ferry-index), shared by all the folder's listeners and removed
// with the last. Where inotify is unavailable (no fd, the watch limit reached) the folder is polled
// every poll_interval instead, logged once.
class FolderWatcher {
public:
    FolderWatcher(event_base* base, WatcherOptions options = {});
    ~FolderWatcher();
    FolderWatcher(const FolderWatcher&) = delete;
    FolderWatcher& operator=(const FolderWatcher&) = delete;

    // `listener` hears of changes to the Maildir folder at `maildir` until the watch is dropped.
    FolderWatch watch(const std::string& maildir, FolderListener* listener);

    // Folders watched (for tests and logs), inotify watches held, folders polled instead.
    size_t folders() const { return folders_.size(); }
    size_t inotify_watches() const { return by_wd_.size(); }
    size_t polled() const;

private:
    friend class FolderWatch;
    using Folder = WatchedFolder;

    void unwatch(Folder& f, FolderListener* listener);
    void drop_if_unused(Folder& f);
    void add_watches(const std::string& key, Folder& f);
    void mark(Folder& f);
    void notify(Folder& f);
    void read_events();
    void flush();
    void poll();
    static void on_inotify(evutil_socket_t, short, void* arg) noexcept;
    static void on_coalesce(evutil_socket_t, short, void* arg) noexcept;
    static void on_poll(evutil_socket_t, short, void* arg) noexcept;

    event_base* base_;
    WatcherOptions options_;
    Fd inotify_;
    EventPtr inotify_ev_, coalesce_ev_, poll_ev_;
    std::unordered_map<std::string, std::unique_ptr<Folder>> folders_;
    std::unordered_map<int, Folder*> by_wd_;
    bool fallback_logged_ = false;
};

}  // namespace ferry::store
