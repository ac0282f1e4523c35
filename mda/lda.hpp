// LDA mode: `ferry-mda -d user@domain [-f sender] < message`, for Postfix, Exim or procmail-style callers.
#pragma once

#include <sysexits.h>

#include <optional>
#include <string>

#include "common/program/config.hpp"

namespace ferry::mda {

// sysexits(3) codes, the contract with the calling MTA (see ferry-mda(8), EXIT STATUS).
enum LdaExit : int {
    kExitOk = EX_OK,
    kExitUsage = EX_USAGE,          // bad -d or -f argument
    kExitDataErr = EX_DATAERR,      // the message is over message_size_limit or has a NUL byte
    kExitNoUser = EX_NOUSER,        // no such account
    kExitCantCreat = EX_CANTCREAT,  // permanent (5xx): the address cannot name a Maildir, over quota
    kExitTempFail = EX_TEMPFAIL,    // disk or database error, try again later
    kExitConfig = EX_CONFIG,        // configuration error
    kExitNoPerm = EX_NOPERM,        // a Sieve reject: the reason is on standard error
};

// Reads the message (CRLF or LF line ends) from `in_fd`, delivers it to `recipient` and returns the exit code.
// `sender` absent or empty means the null reverse-path "<>".
int run_lda(const Config& config, const std::string& recipient, const std::optional<std::string>& sender,
            int in_fd = 0);

}  // namespace ferry::mda
