// ferry-mda's virus scan of mail ferry-smtpd did not scan (ferry-mda(8), VIRUSES): clamd's verdict, then refuse, quarantine, defer or (fail open) mark.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/result.hpp"
#include "mda/delivery.hpp"

namespace ferry {
class Config;
}

namespace ferry::mda {

struct VirusScanSettings {
    std::string address;         // clamd_address; empty: ferry-mda scans nothing
    double timeout = 30;         // clamd_timeout, seconds
    bool quarantine = false;     // mda_virus_action = quarantine (else reject)
    bool fail_open = false;      // virus_scan_fail_open
    std::string hostname;        // whose ferry-smtpd mark is trusted, and named in the fields we add
    std::string quarantine_dir;  // ${state_dir}/mda/quarantine
    bool enabled() const { return !address.empty(); }
};
VirusScanSettings virus_scan_settings(const Config& config);

struct VirusScan {
    enum class Outcome {
        clean,        // scanned, nothing found (or ferry-smtpd on this host scanned it: `skipped`)
        infected,     // refuse it: 554 5.7.1, or exit 77 in LDA mode; `text` is the signature
        quarantined,  // kept in the quarantine directory, not delivered; `text` is the signature
        unavailable,  // clamd down, silent or in error, or the quarantine not written: try again later
        unscanned,    // clamd unavailable and virus_scan_fail_open: deliver `marked` instead
    } outcome = Outcome::clean;
    bool skipped = false;  // clean because ferry-smtpd scanned it
    std::string text;
    Deliverer::Source marked;  // unscanned: the message with scan::unscanned_field first
};

// What a delivery tells the scan of its message, for the log and the quarantine file.
struct ScannedMessage {
    std::string log_id;                // "session: qid" or "qid", first on each log line
    std::string qid, sender, recipients;
    std::string_view head;             // the start of the message: ferry-smtpd's mark is looked for there
    const Deliverer::Source* source = nullptr;
};

// Scans the message unless ferry-smtpd on this host did, and acts per the settings; logs what it
// found. Blocks (clamd_timeout at most): for a worker thread, or LDA mode.
VirusScan scan_for_viruses(const VirusScanSettings& settings, const ScannedMessage& m);

}  // namespace ferry::mda
