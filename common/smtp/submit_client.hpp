// Local submission as a client (ferry-sendmail, ferry-mda): LMTP over submit_socket to ferry-qmgr, blocking; and the queue listing there.
#pragma once

#include <string>
#include <vector>

#include "common/base/fd.hpp"
#include "common/smtp/reply.hpp"

namespace ferry::smtp {

struct Submission {
    std::string sender;                   // "" is the null reverse-path
    std::vector<std::string> recipients;
    std::string message;                  // LF line ends
};

// How the submission ended: `exit_code` per <sysexits.h> (EX_OK when every recipient was
// accepted), `reply` the reply that decided it (for -bs: passed on to the SMTP client), `error` the
// text for stderr when it failed.
struct SubmitOutcome {
    int exit_code = 0;
    Reply reply;
    std::string error;
};

// ferry-qmgr's answers map to exit codes: no socket or no qmgr, a lost connection or a 4xx is
// EX_TEMPFAIL; a refused recipient EX_NOUSER; a refused sender or message EX_DATAERR. Nothing is
// queued unless every recipient is accepted, also when qmgr's limit per transaction (452 4.5.3)
// splits them into several transactions. With `verbose` the dialogue goes to stderr.
SubmitOutcome submit(const std::string& socket_path, const std::string& helo, const Submission& s, bool verbose,
               int timeout_seconds = 300);

// The queue as ferry-qmgr shows the calling user (the private command XQUEUE on submit_socket,
// ferry-qmgr(8)): `text` the listing with LF line ends, else `error`; `unreachable` when qmgr is not
// running or the socket cannot be reached (nothing was asked).
struct QueueListing {
    std::string text;
    std::string error;
    bool unreachable = false;
};
QueueListing queue_listing(const std::string& socket_path, bool verbose, int timeout_seconds = 300);

}  // namespace ferry::smtp
