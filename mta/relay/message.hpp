// One message ferry-relay was handed: its envelope, an unnamed temporary file with its data, and what the peer must support.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/mail/seven_bit.hpp"
#include "common/spool/spool.hpp"

namespace ferry::relay {

struct OutboundMessage {
    std::string log_id;                   // the LMTP session id and, once seen, qmgr's queue id
    std::string sender;                   // "" for the null reverse-path
    std::vector<std::string> recipients;  // as qmgr gave them, one destination domain
    spool::MessageData data;              // LF line ends; read in chunks while it is sent
    bool eight_bit = false;               // some octet above 127 in the data
    bool utf8_envelope = false;           // a UTF-8 sender or recipient: the peer needs SMTPUTF8
    std::string no_seven_bit;             // why it cannot be converted to 7 bit; empty when it can
};

// Writes the data into an unlinked file in `dir` as it arrives and learns, on the way, what the
// message needs from a peer (8BITMIME, or whether it can be converted for one without it).
class MessageWriter {
public:
    Result<void> open(const std::string& dir);
    Result<void> append(std::string_view chunk);
    // Moves the data and what was learnt into `m`.
    Result<void> finish(OutboundMessage& m);

private:
    Fd fd_;
    uint64_t size_ = 0;
    bool eight_bit_ = false;
    mail::SevenBitEncoder check_;  // run with its output dropped: only whether it would succeed
    std::string scratch_;
};

// Whether an address has a UTF-8 (non-ASCII) octet.
bool is_utf8_address(std::string_view address);

}  // namespace ferry::relay
