// The greylisting database: triplet records in a Berkeley DB btree under greylist_db, shared by every ferry-smtpd process.
#include "mta/smtpd/greylist_db.hpp"

#include <db_cxx.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>
#include <tuple>

#include "common/base/fd.hpp"
#include "common/base/log.hpp"

namespace ferry::smtpd {

namespace {

constexpr const char* kStateKey = "m:state";
constexpr std::string_view kTripletPrefix = "t:";

struct DbCloser {
    void operator()(Db* db) const noexcept {
        db->close(0);  // writes the changed pages back; also required after a failed open
        delete db;
    }
};
using DbPtr = std::unique_ptr<Db, DbCloser>;

void db_errcall(const DbEnv*, const char*, const char* msg) noexcept { log::warnx("greylist: berkeley db: %s", msg); }

// The code of this thread's last failed Berkeley DB call: check() sets an unreadable file aside.
thread_local int last_rc = 0;

Error db_error(const std::string& what, int rc) {
    last_rc = rc;
    return make_error(0, "", what + ": " + db_strerror(rc));
}

// Codes that say the file is not a btree Berkeley DB can use, rather than that it cannot be reached.
bool unreadable(int rc) {
    return rc == EINVAL || rc == DB_VERIFY_BAD || rc == DB_RUNRECOVERY || rc == DB_PAGE_NOTFOUND || rc == DB_OLD_VERSION;
}

// The lock, within kLockWaitMs: a process stopped while holding it must not stop every session here.
Result<Fd> take_lock(const std::string& path) {
    Fd fd(::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) return sys_error("cannot open " + path + ".lock");
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(GreylistDb::kLockWaitMs);
    while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) return sys_error("cannot lock " + path + ".lock");
        if (std::chrono::steady_clock::now() >= end)
            return make_error(0, "", path + ".lock is held by another process for too long");
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return fd;
}

Result<DbPtr> open_once(const std::string& path, int& rc) {
    DbPtr db(new Db(nullptr, DB_CXX_NO_EXCEPTIONS));
    db->set_errcall(db_errcall);
    rc = db->open(nullptr, path.c_str(), nullptr, DB_BTREE, DB_CREATE, 0600);
    if (rc != 0) return db_error("cannot open " + path, rc);
    return db;
}

// Moves a file Berkeley DB cannot read out of the way; the next open starts a new one.
void set_aside(const std::string& path, int rc) {
    log::warnx("greylist: %s cannot be read (%s): moved to %s.corrupt, starting a new one", path.c_str(), db_strerror(rc),
               path.c_str());
    if (::rename(path.c_str(), (path + ".corrupt").c_str()) != 0)
        log::warn("greylist: cannot rename %s", path.c_str());
}

Result<DbPtr> open_db(const std::string& path) {
    int rc = 0;
    auto db = open_once(path, rc);
    if (db || !unreadable(rc)) return db;
    set_aside(path, rc);
    return open_once(path, rc);
}

Result<std::optional<std::string>> get(Db& db, const std::string& key) {
    Dbt k(const_cast<char*>(key.data()), static_cast<u_int32_t>(key.size()));
    Dbt v;
    int rc = db.get(nullptr, &k, &v, 0);
    if (rc == DB_NOTFOUND) return std::optional<std::string>{};
    if (rc != 0) return db_error("cannot read a record", rc);
    return std::optional<std::string>(std::string(static_cast<const char*>(v.get_data()), v.get_size()));
}

Result<void> put(Db& db, const std::string& key, const std::string& value) {
    Dbt k(const_cast<char*>(key.data()), static_cast<u_int32_t>(key.size()));
    Dbt v(const_cast<char*>(value.data()), static_cast<u_int32_t>(value.size()));
    if (int rc = db.put(nullptr, &k, &v, 0); rc != 0) return db_error("cannot write a record", rc);
    return {};
}

// "m:state": when pruning last ran, how many records it left, how many were added since.
struct State {
    int64_t pruned = 0;
    uint64_t left = 0;
    uint64_t added = 0;
};

State read_state(Db& db) {
    State s;
    auto v = get(db, kStateKey);
    if (!v || !*v) return s;
    unsigned long long left = 0, added = 0;
    long long pruned = 0;
    if (std::sscanf((*v)->c_str(), "1\t%lld\t%llu\t%llu", &pruned, &left, &added) == 3) s = {pruned, left, added};
    return s;
}

Result<void> write_state(Db& db, const State& s) {
    return put(db, kStateKey, "1\t" + std::to_string(s.pruned) + "\t" + std::to_string(s.left) + "\t" +
                                  std::to_string(s.added));
}

// A cursor that closes.
struct CursorCloser {
    void operator()(Dbc* c) const noexcept { c->close(); }
};
using CursorPtr = std::unique_ptr<Dbc, CursorCloser>;

Result<CursorPtr> cursor(Db& db) {
    Dbc* c = nullptr;
    if (int rc = db.cursor(nullptr, &c, 0); rc != 0) return db_error("cannot walk the records", rc);
    return CursorPtr(c);
}

// One record that survived the expiry pass, ranked for the size cap: waiting ones go first, oldest first.
using Ranked = std::tuple<int, int64_t, std::string>;

// Deletes dead and undecodable records; `survivors` gets the others when `rank` is set, else only their count.
Result<size_t> drop_dead(Db& db, int64_t now, const GreylistTimes& t, bool rank, std::vector<Ranked>& survivors,
                         size_t& alive) {
    auto c = cursor(db);
    if (!c) return c.error();
    size_t removed = 0;
    Dbt k, v;
    int rc;
    while ((rc = (*c)->get(&k, &v, DB_NEXT)) == 0) {
        std::string_view key(static_cast<const char*>(k.get_data()), k.get_size());
        if (key.substr(0, kTripletPrefix.size()) != kTripletPrefix) continue;
        auto e = decode_greylist_entry(std::string_view(static_cast<const char*>(v.get_data()), v.get_size()));
        if (!e || !greylist_alive(*e, now, t)) {
            if (int d = (*c)->del(0); d != 0) return db_error("cannot delete a record", d);
            ++removed;
            continue;
        }
        ++alive;
        if (rank) survivors.emplace_back(e->passed ? 1 : 0, e->passed ? e->last_seen : e->first_seen, std::string(key));
    }
    if (rc != DB_NOTFOUND) return db_error("cannot walk the records", rc);
    return removed;
}

Result<size_t> prune_locked(Db& db, int64_t now, const GreylistTimes& t, size_t max_entries) {
    std::vector<Ranked> survivors;
    size_t alive = 0;
    auto removed = drop_dead(db, now, t, false, survivors, alive);
    if (!removed) return removed;
    size_t total = *removed;
    if (alive > max_entries) {
        alive = 0;
        if (auto again = drop_dead(db, now, t, true, survivors, alive); !again) return again;
        std::sort(survivors.begin(), survivors.end());
        for (size_t i = 0; i + max_entries < survivors.size(); ++i) {
            const std::string& key = std::get<2>(survivors[i]);
            Dbt k(const_cast<char*>(key.data()), static_cast<u_int32_t>(key.size()));
            if (int rc = db.del(nullptr, &k, 0); rc != 0 && rc != DB_NOTFOUND) return db_error("cannot delete a record", rc);
            ++total;
            --alive;
        }
    }
    if (auto r = write_state(db, {now, alive, 0}); !r) return r.error();
    return total;
}

// The work of check() with the lock held and the file open.
Result<std::vector<GreylistVerdict>> decide_all(Db& db, const std::vector<std::string>& keys, int64_t now,
                                                const GreylistTimes& t, size_t max_entries) {
    std::vector<GreylistVerdict> out;
    State state = read_state(db);
    uint64_t added = 0;
    for (const auto& key : keys) {
        auto stored = get(db, key);
        if (!stored) return stored.error();
        auto entry = *stored ? decode_greylist_entry(**stored) : std::nullopt;
        out.push_back(greylist_decide(entry, now, t));
        if (!out.back().store) continue;
        if (auto r = put(db, key, encode_greylist_entry(out.back().entry)); !r) return r.error();
        if (!*stored) ++added;
    }
    state.added += added;
    if (now - state.pruned >= GreylistDb::kPruneEvery || state.left + state.added > max_entries) {
        auto removed = prune_locked(db, now, t, max_entries);
        if (!removed) return removed.error();
        if (*removed) log::info("greylist: pruned %zu record(s)", *removed);
    } else if (added) {
        if (auto r = write_state(db, state); !r) return r.error();
    }
    return out;
}

}  // namespace

Result<std::vector<GreylistVerdict>> GreylistDb::check(const std::vector<std::string>& keys, int64_t now) const {
    auto lock = take_lock(path_);
    if (!lock) return lock.error();
    auto db = open_db(path_);
    if (!db) return db.error();
    last_rc = 0;
    auto out = decide_all(**db, keys, now, times_, max_entries_);
    if (!out && unreadable(last_rc)) {
        // A damaged page: the file goes aside, and the next message starts a new one.
        db->reset();
        set_aside(path_, last_rc);
    }
    return out;
}

Result<size_t> GreylistDb::prune(int64_t now) const {
    auto lock = take_lock(path_);
    if (!lock) return lock.error();
    auto db = open_db(path_);
    if (!db) return db.error();
    return prune_locked(**db, now, times_, max_entries_);
}

Result<size_t> GreylistDb::size() const {
    auto lock = take_lock(path_);
    if (!lock) return lock.error();
    auto db = open_db(path_);
    if (!db) return db.error();
    auto c = cursor(**db);
    if (!c) return c.error();
    size_t n = 0;
    Dbt k, v;
    int rc;
    while ((rc = (*c)->get(&k, &v, DB_NEXT)) == 0)
        if (std::string_view(static_cast<const char*>(k.get_data()), k.get_size()).substr(0, 2) == kTripletPrefix) ++n;
    if (rc != DB_NOTFOUND) return db_error("cannot walk the records", rc);
    return n;
}

}  // namespace ferry::smtpd
