// Checks of a whole received message before ferry-smtpd accepts it (virus scan, spam score, DKIM): each may add header fields or refuse it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/spool/spool.hpp"
#include "common/verify/spf.hpp"

namespace ferry::smtpd {

// What a check knows of the message: the transaction and the bytes as they arrived.
struct CheckedMessage {
    std::string session;                  // the session id, first on each log line
    std::string id;                       // the queue id
    std::string client;                   // the client's address
    std::string helo;
    std::string sender;                   // "" for the null reverse-path
    std::vector<std::string> recipients;
    std::string auth_user;                // "" unless the client logged in
    bool relay_client = false;            // logged in or in smtpd_relay_networks: mail on its way out
    std::optional<verify::spf::Verdict> spf;
    // The header fields the checks before this one added (Finding::fields, in order): a later check
    // may use an earlier one's result (greylisting passes dmarc=pass). Written only between checks.
    std::string found;
    // The message (LF line ends, our Received: field first; our Authentication-Results: too, when
    // smtpd_dkim_verify is off, else DkimCheck writes it with the SPF verdict in), read
    // from the spool file with pread: checks may read it from any thread, in any order.
    spool::MessageData data;
};

// What one check found.
struct Finding {
    std::optional<Error> refusal;  // the reply refusing the message (5xx, or 4xx to try again later)
    std::string fields;            // header fields to add, "Name: value\n" each (folded with "\n\t")
};

// A check in progress; dropping it cancels it, and its callback never runs then.
class CheckRun {
public:
    virtual ~CheckRun() = default;
};

// The run of a check whose work on a worker thread cannot be stopped: dropping it clears the flag
// the completion checks on the loop, so `done` is not called.
class FlagRun final : public CheckRun {
public:
    explicit FlagRun(std::shared_ptr<bool> alive) : alive_(std::move(alive)) {}
    ~FlagRun() override { *alive_ = false; }

private:
    std::shared_ptr<bool> alive_;
};

class MessageCheck {
public:
    using Done = std::function<void(Finding)>;
    virtual ~MessageCheck() = default;
    // For the log: "clamd", "spam", "dkim".
    virtual const char* name() const = 0;
    // Starts checking `m` (it stays alive until `done` runs); `done` runs once, on the event loop,
    // never from within start(), unless the returned run is dropped first. A check bounds its own
    // time: a scanner or DNS server that does not answer ends in a Finding (4xx or a header that
    // says so), never in a session that waits for ever.
    virtual std::unique_ptr<CheckRun> start(std::shared_ptr<const CheckedMessage> m, Done done) = 0;
};

}  // namespace ferry::smtpd
