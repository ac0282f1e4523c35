// FolderWatcher: tells the sessions of one process, within a moment, that a folder changed (inotify, ferry-mailstore(5)).
#include "common/store/notify.hpp"

#include <sys/inotify.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/base/log.hpp"
#include "common/store/index.hpp"

namespace ferry::store {

namespace {
// A delivery links into new/, a flag change renames within cur/ or from new/, an expunge unlinks.
constexpr uint32_t kMessageEvents = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF;
// In the folder itself only ferry-index matters: appended to (modify) or replaced by a compaction.
constexpr uint32_t kFolderEvents = IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF;
}  // namespace

FolderWatch::FolderWatch(FolderWatch&& o) noexcept
    : watcher_(std::exchange(o.watcher_, nullptr)), folder_(o.folder_), listener_(o.listener_) {}

FolderWatch& FolderWatch::operator=(FolderWatch&& o) noexcept {
    if (this != &o) {
        reset();
        watcher_ = std::exchange(o.watcher_, nullptr);
        folder_ = o.folder_;
        listener_ = o.listener_;
    }
    return *this;
}

void FolderWatch::reset() {
    if (auto* w = std::exchange(watcher_, nullptr)) w->unwatch(*folder_, listener_);
}

FolderWatcher::FolderWatcher(event_base* base, WatcherOptions options) : base_(base), options_(options) {
    coalesce_ev_.reset(evtimer_new(base_, &FolderWatcher::on_coalesce, this));
    poll_ev_.reset(event_new(base_, -1, EV_PERSIST, &FolderWatcher::on_poll, this));
    if (!options_.use_inotify) return;
    inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!inotify_.valid()) {
        log::warn("inotify_init1: folders are polled every %gs instead", options_.poll_interval);
        fallback_logged_ = true;
        return;
    }
    inotify_ev_.reset(event_new(base_, inotify_.get(), EV_READ | EV_PERSIST, &FolderWatcher::on_inotify, this));
    event_add(inotify_ev_.get(), nullptr);
}

FolderWatcher::~FolderWatcher() = default;

size_t FolderWatcher::polled() const {
    size_t n = 0;
    for (const auto& [key, f] : folders_) n += f->wds.empty() ? 1 : 0;
    return n;
}

FolderWatch FolderWatcher::watch(const std::string& maildir, FolderListener* listener) {
    auto& slot = folders_[maildir];
    if (!slot) {
        slot = std::make_unique<Folder>();
        slot->key = maildir;
        add_watches(maildir, *slot);
    }
    slot->listeners.push_back(listener);
    return FolderWatch(this, slot.get(), listener);
}

// Three watches, or none: a folder half watched would miss changes, so it is polled instead.
void FolderWatcher::add_watches(const std::string& key, Folder& f) {
    if (inotify_.valid()) {
        const std::pair<std::string, uint32_t> paths[] = {
            {key + "/new", kMessageEvents}, {key + "/cur", kMessageEvents}, {key, kFolderEvents}};
        for (const auto& [path, mask] : paths) {
            int wd = ::inotify_add_watch(inotify_.get(), path.c_str(), mask | IN_ONLYDIR);
            if (wd < 0) {
                int err = errno;
                if (!fallback_logged_) {
                    errno = err;
                    log::warn("inotify_add_watch %s: folders it cannot watch are polled every %gs instead "
                              "(raise fs.inotify.max_user_watches)", path.c_str(), options_.poll_interval);
                    fallback_logged_ = true;
                }
                for (int w : f.wds) {
                    ::inotify_rm_watch(inotify_.get(), w);
                    by_wd_.erase(w);
                }
                f.wds.clear();
                break;
            }
            f.wds.push_back(wd);
            by_wd_[wd] = &f;
        }
    }
    if (f.wds.empty() && !event_pending(poll_ev_.get(), EV_TIMEOUT, nullptr)) {
        timeval tv = to_timeval(options_.poll_interval);
        event_add(poll_ev_.get(), &tv);
    }
}

void FolderWatcher::unwatch(Folder& f, FolderListener* listener) {
    auto& ls = f.listeners;
    for (size_t i = 0; i < ls.size(); ++i) {
        if (ls[i] != listener) continue;
        // While the folder notifies, positions must stay: the slot is emptied and swept after.
        if (f.dispatching) ls[i] = nullptr;
        else {
            ls[i] = ls.back();
            ls.pop_back();
        }
        break;
    }
    if (!f.dispatching) drop_if_unused(f);
}

// The last listener gone: the watches go, and the folder with them.
void FolderWatcher::drop_if_unused(Folder& f) {
    if (!f.listeners.empty()) return;
    for (int wd : f.wds) {
        ::inotify_rm_watch(inotify_.get(), wd);
        by_wd_.erase(wd);
    }
    folders_.erase(f.key);  // destroys f
    if (polled() == 0) event_del(poll_ev_.get());
}

void FolderWatcher::on_inotify(evutil_socket_t, short, void* arg) noexcept {
    static_cast<FolderWatcher*>(arg)->read_events();
}

void FolderWatcher::read_events() {
    alignas(inotify_event) char buf[16384];
    for (;;) {
        ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        for (ssize_t at = 0; at < n;) {
            const auto* ev = reinterpret_cast<const inotify_event*>(buf + at);
            at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
            if (ev->mask & IN_Q_OVERFLOW) {
                // Events were lost: every folder may have changed.
                for (auto& [key, f] : folders_) mark(*f);
                continue;
            }
            auto it = by_wd_.find(ev->wd);
            if (it == by_wd_.end()) continue;
            Folder& f = *it->second;
            bool is_folder = !f.wds.empty() && f.wds.back() == ev->wd;
            if (ev->mask & IN_IGNORED) {
                by_wd_.erase(it);  // the directory is gone: listeners find out when they sync
                mark(f);
                continue;
            }
            if (is_folder && ev->len > 0 && std::strcmp(ev->name, kIndexFile) != 0) continue;
            mark(f);
        }
    }
}

// The first event of a burst arms the timer; the rest of the burst rides on it.
void FolderWatcher::mark(Folder& f) {
    f.dirty = true;
    if (event_pending(coalesce_ev_.get(), EV_TIMEOUT, nullptr)) return;
    timeval tv = to_timeval(options_.coalesce);
    event_add(coalesce_ev_.get(), &tv);
}

void FolderWatcher::on_coalesce(evutil_socket_t, short, void* arg) noexcept {
    static_cast<FolderWatcher*>(arg)->flush();
}

void FolderWatcher::flush() {
    std::vector<std::string> dirty;
    for (auto& [key, f] : folders_)
        if (f->dirty) dirty.push_back(key);
    for (const auto& key : dirty)
        if (auto it = folders_.find(key); it != folders_.end()) notify(*it->second);
}

void FolderWatcher::on_poll(evutil_socket_t, short, void* arg) noexcept { static_cast<FolderWatcher*>(arg)->poll(); }

void FolderWatcher::poll() {
    std::vector<std::string> polled;
    for (auto& [key, f] : folders_)
        if (f->wds.empty()) polled.push_back(key);
    for (const auto& key : polled)
        if (auto it = folders_.find(key); it != folders_.end()) notify(*it->second);
}

// Listeners may drop their watch (or add one) from the callback: removals leave holes swept after.
void FolderWatcher::notify(Folder& f) {
    f.dirty = false;
    ++f.dispatching;
    for (size_t i = 0; i < f.listeners.size(); ++i)
        if (FolderListener* l = f.listeners[i]) l->on_folder_changed();
    --f.dispatching;
    if (f.dispatching) return;
    std::erase(f.listeners, nullptr);
    drop_if_unused(f);
}

}  // namespace ferry::store
