// Bounces and delay warnings: RFC 3464 reports built from the recipient state, queued as new messages.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/mail/dsn.hpp"
#include "common/base/result.hpp"
#include "common/spool/spool.hpp"
#include "common/spool/state.hpp"

namespace ferry::qmgr {

// The RFC 3463 status a reply carries ("550 5.1.1 no such user" -> "5.1.1"); a reply with a code but
// no status gives "<class>.0.0"; anything else (a reason that is no reply) gives `fallback`.
std::string status_of_reply(std::string_view reply, const std::string& fallback);

// The report about `rcpts` of the message `env` (whose data is `data`, or its header section):
// failed recipients with their stored DSN status, delayed ones with the status of their last reply
// and `retry_until`, delivered (NOTIFY=SUCCESS) ones with that of their 2xx reply. ENVID and ORCPT
// of the envelope (RFC 3461) go in as Original-Envelope-Id and Original-Recipient; when
// returns_full(), `data` must be the whole message and is returned as message/rfc822.
dsn::Report make_report(const spool::Envelope& env, std::string_view data, const std::vector<const RcptState*>& rcpts,
                        dsn::Action action, const std::string& reporting_mta, int64_t retry_until, int64_t now);

// RET=FULL on a failure report (RFC 3461 4.3); everything else quotes the header section only.
bool returns_full(const spool::Envelope& env, dsn::Action action);

// The NOTIFY bits (dsn::notify) the sender gave for queue-file recipient `index`; 0 when none.
unsigned notify_bits(const spool::Envelope& env, size_t index);

// The whole data of a queued message (for RET=FULL).
Result<std::string> read_message(const spool::MessageData& data);

// The most of an original message's header section a report quotes; a longer one is cut at a line end.
inline constexpr size_t kMaxQuotedHeader = 262144;

// The header section of a queued message (up to its first empty line, LF line ends), read from the
// queue file in pieces that stop there, so the body is never read. At most `max` bytes, cut after the
// last whole line that fits (or at `max` with an LF added when no line fits).
Result<std::string> read_header(const spool::MessageData& data, size_t max = kMaxQuotedHeader);

// Queues `report` into `spool_dir` as a new message from the null sender <> to report.original_sender,
// with the commit protocol of spool::Writer (incoming/, fsync, link into queue/, fsync queue/).
// A Received: line naming the new queue id comes first, so every program's log lines join up.
// The report is queued under `id` unless that is taken (then under a new one); `before_commit`, when
// given, is told the id before the commit and may refuse it (nothing is queued then).
// Returns the queue id once the report is committed; never call it for the null sender.
Result<std::string> queue_report(const std::string& spool_dir, dsn::Report report, const std::string& id,
                                 const std::function<Result<void>(const std::string&)>& before_commit = {});

// "5d", "4h", "90s": the largest unit that divides `seconds` exactly.
std::string duration_text(int64_t seconds);

}  // namespace ferry::qmgr
