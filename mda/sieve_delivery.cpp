// Sieve at delivery: an account's scripts (site before/after, the user's active one) compiled once, cached, and run on a message.
#include "mda/sieve_delivery.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "common/base/fs.hpp"
#include "common/base/log.hpp"
#include "common/mail/date.hpp"
#include "common/program/daemon.hpp"
#include "common/store/folders.hpp"
#include "common/store/index.hpp"
#include "common/store/maildir.hpp"
#include "mda/auto_reply.hpp"
#include "mda/vacation_memory.hpp"

namespace ferry::mda {

namespace {

constexpr size_t kMaxCachedScripts = 1000;        // compiled scripts kept; the cache starts afresh when full
constexpr uint64_t kMaxHeaderRead = 1024 * 1024;  // octets of header section the scripts see at most
constexpr const char* kFailedFile = "ferry-failed";  // <maildir>/sieve/: the script a notice was sent for

std::string slurp(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    std::string out;
    if (!fd.valid()) return out;
    char buf[8192];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
}

// The *.sieve files of `dir`, sorted by name.
std::vector<std::string> sieve_files(const std::string& dir) {
    std::vector<std::string> out;
    std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
    if (!d) return out;
    while (dirent* de = readdir(d.get())) {
        std::string name = de->d_name;
        if (name.size() > 6 && name[0] != '.' && name.compare(name.size() - 6, 6, ".sieve") == 0)
            out.push_back(dir + "/" + name);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string stamp_of(const struct stat& st) {
    return std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec) + " " + std::to_string(st.st_size);
}

std::string domain_of(const std::string& address) {
    size_t at = address.rfind('@');
    return at == std::string::npos ? "" : address.substr(at + 1);
}

// a + b, but never past `cap` (b may be UINT64_MAX: all of it).
uint64_t plus_capped(uint64_t a, uint64_t b, uint64_t cap) { return a >= cap || b >= cap - a ? cap : a + b; }

int local_zone_minutes(time_t now) {
    struct tm tm;
    localtime_r(&now, &tm);
    return static_cast<int>(tm.tm_gmtoff / 60);
}

}  // namespace

// A script as compiled from one version of its file (path + device, inode, mtime, size).
struct SieveDelivery::Compiled {
    std::string stamp;
    std::optional<sieve::Script> script;
    std::string error;  // "line 3, column 7: ..." when it did not compile
};

SieveSettings sieve_settings(const Config& config) {
    SieveSettings s;
    s.before_dir = config.str("sieve_before");
    s.after_dir = config.str("sieve_after");
    s.compile.max_script_size = std::max<uint64_t>(config.size("sieve_max_script_size"), 1);
    s.compile.max_nesting = static_cast<size_t>(std::max<int64_t>(config.integer("sieve_max_nesting"), 1));
    s.run.max_actions = static_cast<size_t>(std::max<int64_t>(config.integer("sieve_max_actions"), 1));
    s.run.max_redirects = static_cast<size_t>(std::max<int64_t>(config.integer("sieve_max_redirects"), 0));
    s.run.max_steps = static_cast<uint64_t>(std::max<int64_t>(config.integer("sieve_max_steps"), 1));
    s.max_body = config.size("sieve_max_body_bytes");
    s.subaddress = config.str("recipient_delimiter");
    std::string score = config.str("spam_junk_score");
    if (auto v = junk_threshold_of("x " + score, "x")) s.junk_score = *v;
    else log::warnx("spam_junk_score %s is no number: junk filing is off", score.c_str());
    if (std::string map = config.str("spam_junk_score_map"); !map.empty()) s.junk_map = slurp(map);
    s.duplicate_period = std::max<int64_t>(1, config.duration("sieve_duplicate_period").count());
    s.duplicate_max_period = std::max<int64_t>(1, config.duration("sieve_duplicate_max_period").count());
    s.duplicate_max_entries = static_cast<size_t>(std::max<int64_t>(1, config.integer("sieve_duplicate_max_entries")));
    return s;
}

SieveDelivery::SieveDelivery(const Config& config) : settings_(sieve_settings(config)), host_(my_hostname(config)) {}
SieveDelivery::~SieveDelivery() = default;

Result<std::string> read_message_start(int fd, uint64_t start, uint64_t end, uint64_t max_body) {
    std::string out;
    uint64_t limit = end;  // lowered once the end of the header section is seen
    char buf[65536];
    for (uint64_t at = start; at < limit;) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof buf, limit - at));
        ssize_t n = pread(fd, buf, want, static_cast<off_t>(at));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("read back the message");
        if (n == 0) break;
        size_t before = out.size();
        out.append(buf, static_cast<size_t>(n));
        at += static_cast<uint64_t>(n);
        if (limit == end) {
            size_t from = before >= 1 ? before - 1 : 0;
            size_t blank = out.find("\n\n", from);
            size_t header = out[0] == '\n' ? 1 : blank == std::string::npos ? blank : blank + 2;
            if (header != std::string::npos) limit = plus_capped(start + header, max_body, end);
            else if (out.size() > kMaxHeaderRead) limit = plus_capped(at, max_body, end);
        }
    }
    if (out.size() > limit - start) out.resize(static_cast<size_t>(limit - start));
    return out;
}

std::optional<std::string> SieveDelivery::junk_folder(const SieveEnvelope& e) const {
    double threshold = settings_.junk_score;
    if (!settings_.junk_map.empty())
        if (auto v = junk_threshold_of(settings_.junk_map, domain_of(e.account))) threshold = *v;
    if (threshold <= 0) return std::nullopt;
    auto score = spam_score(e.head);
    // Our host name is ferry-smtpd's authserv-id: its Authentication-Results field says a DMARC quarantine.
    if ((!score || *score < threshold) && !dmarc_quarantined(e.head, host_)) return std::nullopt;
    return std::string("Junk");
}

std::shared_ptr<const SieveDelivery::Compiled> SieveDelivery::load(const std::string& path, const struct stat& st) {
    std::string stamp = stamp_of(st);
    {
        std::lock_guard lock(mu_);
        if (auto it = cache_.find(path); it != cache_.end() && it->second->stamp == stamp) return it->second;
    }
    auto c = std::make_shared<Compiled>();
    c->stamp = stamp;
    if (static_cast<uint64_t>(st.st_size) > settings_.compile.max_script_size) {
        c->error = "the script is larger than sieve_max_script_size (" + std::to_string(settings_.compile.max_script_size) + " octets)";
    } else {
        auto compiled = sieve::compile(slurp(path), settings_.compile);
        if (compiled.script) c->script = std::move(compiled.script);
        else c->error = compiled.error ? compiled.error->text() : "the script did not compile";
    }
    log::debug("sieve: compiled %s%s%s", path.c_str(), c->error.empty() ? "" : ": ", c->error.c_str());
    std::lock_guard lock(mu_);
    if (cache_.size() >= kMaxCachedScripts) cache_.clear();
    cache_[path] = c;
    return c;
}

// Site before scripts (site-wide, then the domain's), the user's active script, site after scripts.
std::vector<SieveDelivery::Loaded> SieveDelivery::scripts(const SieveEnvelope& e) {
    std::vector<Loaded> out;
    auto add = [&](const std::string& path, bool user) {
        struct stat st;
        if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
        std::string name = path.substr(path.rfind('/') + 1);
        out.push_back(Loaded{path, name, load(path, st), user});
    };
    auto add_dir = [&](const std::string& dir) {
        if (dir.empty()) return;
        for (const auto& p : sieve_files(dir)) add(p, false);
        if (std::string domain = domain_of(e.account); !domain.empty() && domain[0] != '.')
            for (const auto& p : sieve_files(dir + "/" + domain)) add(p, false);
    };
    add_dir(settings_.before_dir);
    add(e.maildir + "/sieve/active", true);
    if (!out.empty() && out.back().user) {
        char target[4096];
        ssize_t n = readlink(out.back().path.c_str(), target, sizeof target - 1);
        if (n > 0) out.back().name = std::string(target, static_cast<size_t>(n));
        if (n > 0) out.back().path = e.maildir + "/sieve/" + out.back().name;  // for the log
        if (out.back().name.size() > 6) out.back().name.resize(out.back().name.size() - 6);  // ".sieve"
    }
    add_dir(settings_.after_dir);
    return out;
}

DeliveryPlan SieveDelivery::decide(const SieveEnvelope& e, const Reader& read, uint64_t size) {
    auto junk = junk_folder(e);
    auto loaded = scripts(e);
    if (loaded.empty()) return keep_plan(junk);
    auto text = read(settings_.max_body);
    if (!text) {
        log::warnx("%s: to=<%s> Sieve not run, the message is kept: %s", e.qid.c_str(), e.account.c_str(),
                   text.error().what().c_str());
        return keep_plan(junk);
    }
    std::string message = std::move(text.value());
    std::vector<sieve::Outcome> outcomes;
    sieve::RunInput in;
    in.size = size;
    in.envelope.from = e.sender;
    in.envelope.to = e.rcpt;
    in.envelope.original_to = e.rcpt;
    in.subaddress_delimiters = settings_.subaddress;
    in.environment = {{"domain", domain_of(e.account)}, {"host", host_}, {"location", "MDA"}, {"name", "ferry"},
                      {"phase", "during"}};
    in.now = time(nullptr);
    in.local_zone = local_zone_minutes(in.now);
    in.own_addresses = {e.account};
    std::string root = e.maildir;
    in.mailbox_exists = [root](std::string_view mailbox) {
        auto path = store::folder_path(root, mailbox);
        struct stat st;
        return path && stat((*path + "/cur").c_str(), &st) == 0;
    };
    // RFC 7352: the account's memory, read at the first duplicate test; this delivery's own entries
    // (an attempt before a crash recorded them) do not count.
    std::optional<std::vector<MemoryEntry>> seen;
    int64_t now = in.now;
    in.duplicate = [&seen, &e, now](const sieve::DuplicateQuery& q) {
        if (!seen) {
            auto r = MemoryFile::read(e.maildir + "/sieve", kDuplicateName, kDuplicateVersion);
            if (!r) log::warnx("%s: to=<%s> duplicate memory not read, nothing counts as seen: %s", e.qid.c_str(),
                               e.account.c_str(), r.error().what().c_str());
            seen = r ? std::move(r.value()) : std::vector<MemoryEntry>();
        }
        return duplicate_seen(*seen, duplicate_key(q.handle, q.id), e.qid, now);
    };
    for (const auto& s : loaded) {
        std::string why;
        std::optional<sieve::Outcome> outcome;
        if (!s.compiled->script) {
            why = s.compiled->error;
        } else {
            in.message = message;
            auto r = sieve::run(*s.compiled->script, in, settings_.run);
            if (r) outcome = std::move(r.value());
            else why = r.error().what();
        }
        if (!outcome) {
            log::warnx("%s: to=<%s> Sieve script %s failed, the message is kept: %s", e.qid.c_str(), e.account.c_str(),
                       s.path.c_str(), why.c_str());
            if (s.user) notify_failure(e, s, why);
            return keep_plan(junk);
        }
        // A later script sees the header as this one left it (editheader, RFC 5293).
        std::vector<sieve::Action> edits;
        for (const auto& a : outcome->actions)
            if (a.type == sieve::Action::Type::addheader || a.type == sieve::Action::Type::deleteheader) edits.push_back(a);
        if (!edits.empty()) {
            auto h = apply_edits(message, edits);
            message = h.header + message.substr(std::min(h.replaced, message.size()));
        }
        bool stopped = outcome->stopped;
        outcomes.push_back(std::move(outcome.value()));
        if (stopped) break;
    }
    auto plan = make_plan(combine(outcomes), junk);
    for (const auto& o : outcomes) plan.duplicates.insert(plan.duplicates.end(), o.duplicates.begin(), o.duplicates.end());
    std::string what;
    for (const auto& a : combine(outcomes)) what += (what.empty() ? "" : "; ") + sieve::describe(a);
    log::info("%s: to=<%s> sieve: %s", e.qid.c_str(), e.account.c_str(), what.c_str());
    return plan;
}

// One notice per version of the failing script: its stamp is remembered in sieve/ferry-failed.
void SieveDelivery::notify_failure(const SieveEnvelope& e, const Loaded& script, const std::string& why) {
    std::lock_guard lock(mu_);
    std::string memo = e.maildir + "/sieve/" + kFailedFile;
    std::string seen = slurp(memo);
    if (seen == script.compiled->stamp) return;
    time_t now = time(nullptr);
    std::string text = "From: Mail Delivery System <MAILER-DAEMON@" + host_ + ">\n" + "To: <" + e.account + ">\n" +
                       "Subject: Your Sieve script \"" + script.name + "\" failed\n" +
                       "Date: " + mail::rfc5322_date(now) + "\n" + "Auto-Submitted: auto-generated\n" +
                       "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n" +
                       "Your Sieve script " + script.name + " failed: " + why + "\n\n" +
                       "Messages are kept in INBOX until the script is corrected. This notice is sent once\n" +
                       "for each version of the script.\n";
    std::string_view parts[] = {text};
    auto d = maildir::Delivery::begin(e.maildir, parts, host_);
    auto name = d ? d->commit() : Result<std::string>(d.error());
    if (!name) {
        log::warnx("%s: to=<%s> no notice of the failed Sieve script: %s", e.qid.c_str(), e.account.c_str(),
                   name.error().what().c_str());
        return;
    }
    if (auto uid = store::append_delivered(e.maildir, *name); !uid)
        log::warnx("%s: %s: no UID at delivery: %s", e.qid.c_str(), e.maildir.c_str(), uid.error().what().c_str());
    if (auto r = write_file_durably(memo, script.compiled->stamp, 0600); !r)
        log::warnx("%s: %s", e.qid.c_str(), r.error().what().c_str());
    log::info("%s: to=<%s> notice of the failed Sieve script %s delivered as %s", e.qid.c_str(), e.account.c_str(),
              script.name.c_str(), name->c_str());
}

Result<void> SieveDelivery::send(const SieveEnvelope& e, const Reader& read, DeliveryPlan& plan, AutoReply& auto_reply,
                                const SendLedger* ledger) {
    if (plan.redirects.empty() && plan.vacations.empty()) return {};
    auto text = read(UINT64_MAX);
    if (!text) {
        log::warnx("%s: to=<%s> redirect and vacation not sent: %s", e.qid.c_str(), e.account.c_str(),
                   text.error().what().c_str());
        if (!plan.redirects.empty()) add_inbox(plan);
        return {};
    }
    Original m{*text, e.sender, e.account, e.qid};
    for (const auto& r : plan.redirects) {
        std::string what = "redirect:" + r.address;
        std::optional<bool> before;
        if (ledger) {
            auto o = ledger->outcome(what);
            if (!o) return o.error();
            before = *o;
        }
        if (before) {
            log::info("%s: to=<%s> redirect to <%s> %s by an earlier attempt", e.qid.c_str(), e.account.c_str(),
                      r.address.c_str(), *before ? "sent already" : "failed");
            if (!*before && !r.copy) add_inbox(plan);
            continue;
        }
        auto sent = auto_reply.redirect(m, r.address);
        if (ledger) ledger->record(what, static_cast<bool>(sent));
        if (sent) {
            log::info("%s: to=<%s> redirected to <%s>", e.qid.c_str(), e.account.c_str(), r.address.c_str());
            continue;
        }
        log::warnx("%s: to=<%s> redirect to <%s> failed%s: %s", e.qid.c_str(), e.account.c_str(), r.address.c_str(),
                   r.copy ? "" : ", the message is kept", sent.error().what().c_str());
        if (!r.copy) add_inbox(plan);
    }
    for (const auto& v : plan.vacations) {
        std::string what = "vacation:" + vacation_handle_key(v.handle);  // a handle may be long: its hash
        if (ledger) {
            auto o = ledger->outcome(what);
            if (!o) return o.error();
            if (*o) {
                log::info("%s: to=<%s> vacation reply decided by an earlier attempt", e.qid.c_str(), e.account.c_str());
                continue;
            }
        }
        auto sent = auto_reply.vacation(m, e.maildir, v);
        if (!sent) {
            log::warnx("%s: to=<%s> vacation reply failed: %s", e.qid.c_str(), e.account.c_str(), sent.error().what().c_str());
            continue;  // not recorded: the next attempt may answer (the vacation memory stops a second reply)
        }
        if (ledger) ledger->record(what, true);
        if (*sent) log::info("%s: to=<%s> vacation reply to <%s>", e.qid.c_str(), e.account.c_str(), v.to.c_str());
    }
    return {};
}

void SieveDelivery::track(const SieveEnvelope& e, const DeliveryPlan& plan) {
    if (plan.duplicates.empty()) return;
    auto memory = MemoryFile::open(e.maildir + "/sieve", kDuplicateName, kDuplicateVersion);
    if (!memory) {
        log::warnx("%s: to=<%s> duplicate ids not remembered: %s", e.qid.c_str(), e.account.c_str(),
                   memory.error().what().c_str());
        return;
    }
    int64_t now = time(nullptr);
    for (const auto& q : plan.duplicates) {
        int64_t period = q.seconds ? std::min<int64_t>(static_cast<int64_t>(std::min<uint64_t>(q.seconds, INT64_MAX)),
                                                       settings_.duplicate_max_period)
                                   : settings_.duplicate_period;
        duplicate_remember(memory->entries(), duplicate_key(q.handle, q.id), e.qid, period, q.last, now,
                           settings_.duplicate_max_entries);
    }
    if (auto r = memory->write(); !r)
        log::warnx("%s: to=<%s> duplicate ids not remembered: %s", e.qid.c_str(), e.account.c_str(), r.error().what().c_str());
}

std::vector<FolderTarget> SieveDelivery::folders(const SieveEnvelope& e, const DeliveryPlan& plan) {
    std::vector<FolderTarget> out;
    auto add = [&](const std::string& folder, const std::string& maildir, const std::string& flags) {
        for (auto& t : out)
            if (t.maildir == maildir) {
                for (char c : flags)
                    if (t.flags.find(c) == std::string::npos) t.flags += c;
                std::sort(t.flags.begin(), t.flags.end());
                return;
            }
        out.push_back(FolderTarget{folder, maildir, flags});
    };
    for (const auto& c : plan.copies) {
        if (store::is_inbox(c.folder)) {
            add("INBOX", e.maildir, c.flags);
            continue;
        }
        auto path = store::folder_path(e.maildir, c.folder);
        struct stat st;
        bool there = path && stat((*path + "/cur").c_str(), &st) == 0;
        if (path && !there && c.create) {
            auto made = store::create_folder(e.maildir, c.folder);
            there = stat((*path + "/cur").c_str(), &st) == 0;  // made now, or by another delivery meanwhile
            if (!there)
                log::warnx("%s: to=<%s> cannot create folder %s: %s", e.qid.c_str(), e.account.c_str(), c.folder.c_str(),
                           made ? "gone again" : made.error().what().c_str());
            else if (auto r = store::subscribe(e.maildir, c.folder, true); !r)
                log::warnx("%s: to=<%s> %s", e.qid.c_str(), e.account.c_str(), r.error().what().c_str());
        }
        if (there) {
            add(c.folder, *path, c.flags);
            continue;
        }
        log::info("%s: to=<%s> fileinto \"%s\": %s, into INBOX instead", e.qid.c_str(), e.account.c_str(), c.folder.c_str(),
                  path ? "no such folder" : path.error().what().c_str());
        add("INBOX", e.maildir, c.flags);
    }
    return out;
}

}  // namespace ferry::mda
