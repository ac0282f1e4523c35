// One message ferry-relay was handed: its envelope, an unnamed temporary file with its data, and what the peer must support.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/mail/seven_bit.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "common/spool/spool.hpp"
#include "mta/relay/arc_seal.hpp"
#include "mta/relay/dkim_sign.hpp"

namespace ferry::relay {

struct OutboundMessage {
    std::string log_id;                   // the LMTP session id and, once seen, qmgr's queue id
    std::string sender;                   // "" for the null reverse-path
    std::vector<std::string> recipients;  // as qmgr gave them, one destination domain
    smtp::MailParams params;              // MAIL's parameters from qmgr: SMTPUTF8, RET, ENVID
    std::vector<smtp::RcptParams> rcpt_params;  // parallel to recipients: NOTIFY, ORCPT
    spool::MessageData data;              // LF line ends; read in chunks while it is sent
    bool eight_bit = false;               // some octet above 127 in the data
    bool utf8_envelope = false;           // a UTF-8 sender or recipient: the peer needs SMTPUTF8
    bool eight_bit_header = false;        // some octet above 127 in the header section
    std::string no_seven_bit;             // why it cannot be converted to 7 bit; empty when it can
};

// RFC 6531 3.4: whether the peer must offer SMTPUTF8 for `m`: a UTF-8 address, or a message that
// came with SMTPUTF8 and has UTF-8 in its header section. (An SMTPUTF8 message that needs neither
// goes to a peer without the extension as it is.)
bool needs_smtputf8(const OutboundMessage& m);

// Writes the data into an unlinked file in `dir` as it arrives and learns, on the way, what the
// message needs from a peer (8BITMIME, or whether it can be converted for one without it).
class MessageWriter {
public:
    // `dkim`, `arc`: signing and sealing settings (they outlive the writer); the signature and the
    // ARC set go on top, as late fields, the ARC set above the signature (RFC 8617 5.1 step 1).
    Result<void> open(const std::string& dir, const DkimSettings* dkim = nullptr, const ArcSettings* arc = nullptr);
    Result<void> append(std::string_view chunk);
    // Moves the data and what was learnt into `m`.
    Result<void> finish(OutboundMessage& m);

private:
    Fd fd_;
    uint64_t size_ = 0;
    bool eight_bit_ = false;
    bool in_header_ = true;        // still in the header section
    bool line_start_ = true;       // the last octet seen ended a line
    bool eight_bit_header_ = false;
    mail::SevenBitEncoder check_;  // run with its output dropped: only whether it would succeed
    std::string scratch_;
    std::unique_ptr<DkimSigning> signing_;
    std::unique_ptr<ArcSealing> sealing_;
};

// Whether an address has a UTF-8 (non-ASCII) octet.
bool is_utf8_address(std::string_view address);

}  // namespace ferry::relay
