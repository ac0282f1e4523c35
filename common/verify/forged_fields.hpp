// Drops fields of a message that only we may write (for ferry-smtpd and ferry-qmgr's submit socket): Authentication-Results: claiming our authserv-id (RFC 8601 5), X-Spam-*, our X-Virus-Scanned:.
#pragma once

#include <string>
#include <string_view>

namespace ferry::verify {

// A stream filter over the message as the DATA reader writes it: header fields are held one at a
// time (the reader bounds the header section) and passed on unless forged; the body passes as is.
class ForgedResultsFilter {
public:
    explicit ForgedResultsFilter(std::string authserv_id) : id_(std::move(authserv_id)) {}
    // Appends to `out` what of `in` can be passed on now.
    void feed(std::string_view in, std::string& out);
    // The message is complete: what is still held goes out.
    void finish(std::string& out);
    size_t dropped() const { return dropped_; }
    // Past the header section: from here on feed() passes everything as it is.
    bool in_body() const { return body_; }
    // X-Spam-Score:, X-Spam-Status: and X-Spam-Flag: dropped: ferry-smtpd's spam check writes
    // them and ferry-mda files by them, so none from outside may stand beside ours.
    size_t spam_dropped() const { return spam_dropped_; }
    // X-Virus-Scanned: fields naming this host (scan::is_scanned_field): ferry-mda trusts ours.
    size_t virus_dropped() const { return virus_dropped_; }

private:
    void end_field(std::string& out);
    bool forged(std::string_view field) const;
    static bool spam_field(std::string_view field);

    std::string id_;
    std::string field_;  // the header field being read, through its last complete line
    std::string line_;   // a line not yet complete
    bool body_ = false;
    size_t dropped_ = 0;
    size_t spam_dropped_ = 0;
    size_t virus_dropped_ = 0;
};

}  // namespace ferry::verify
