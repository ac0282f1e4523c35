// SMTP and LMTP protocol pieces as pure functions over bytes: commands, paths, the DATA reader, replies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/mail/address.hpp"
#include "common/mail/dsn.hpp"

namespace ferry::smtp {

// Limits for command lines and paths. Defaults are RFC 5321 4.5.3.1's minimums; the local part
// (64) and domain (255) limits are the address grammar's (common/mail/address.hpp).
struct Limits {
    size_t max_command_length = 512;  // 4.5.3.1.4: the whole line including CRLF; never below 512
    size_t max_path = kMaxPath;       // 4.5.3.1.3: including "<", ">" and any source route
};

// A reverse-path or forward-path. A source route (<@a,@b:user@d>) is checked and dropped (RFC 5321 C).
struct Path {
    bool null = false;   // "<>": the null reverse-path, MAIL only
    std::string local;   // the local part; quoted only when its content is not a dot-string
    std::string domain;  // a domain or address literal ("[127.0.0.1]"); empty for RCPT TO:<Postmaster>
    bool utf8 = false;   // the mailbox has UTF-8 in it (RFC 6531): only in a transaction with SMTPUTF8
    // "local@domain"; "" for the null path; "Postmaster" alone for the domain-less special case.
    std::string mailbox() const;
};

// ESMTP parameters of MAIL (RFC 1870 SIZE, RFC 6152 BODY, RFC 4954 AUTH, RFC 6531 SMTPUTF8,
// RFC 3461 RET and ENVID). Also what an LMTP server hands its backend (LmtpBackend::mail).
struct MailParams {
    enum class Body { unspecified, seven_bit, eight_bit_mime };
    std::optional<uint64_t> size;
    Body body = Body::unspecified;
    std::optional<std::string> auth;  // the xtext as sent, "<>" included
    bool smtputf8 = false;            // SMTPUTF8: UTF-8 addresses and headers in this transaction
    dsn::Ret ret = dsn::Ret::unspecified;
    std::optional<std::string> envid; // ENVID, xtext decoded (printable ASCII, at most 100)
};

// ESMTP parameters of RCPT (RFC 3461 NOTIFY and ORCPT). Also what an LMTP server hands its backend.
struct RcptParams {
    unsigned notify = 0;              // dsn::notify bits; 0: no NOTIFY parameter
    std::optional<dsn::Orcpt> orcpt;  // ORCPT, decoded
};

// BDAT's argument (RFC 3030 2): the chunk size and whether it is the LAST one.
struct Bdat {
    uint64_t size = 0;
    bool last = false;
};

struct Command {
    std::string verb;    // upper-cased: "MAIL", "EHLO", or whatever the client sent
    std::string arg;     // the rest of the line with surrounding spaces trimmed
    Path path;           // MAIL and RCPT
    MailParams params;   // MAIL
    RcptParams rcpt;     // RCPT
    Bdat bdat;           // BDAT
};

// The largest BDAT chunk size parse_command takes (2^53 octets). A larger one, or one that does
// not parse, leaves no way to know where the chunk ends: the reply is 501 and the session closes.
inline constexpr uint64_t kMaxBdatChunk = uint64_t{1} << 53;
// Whether a refused command is a BDAT whose chunk cannot be found in the input (see kMaxBdatChunk).
bool bdat_unsynchronised(const Error& e);

// Parses one command line (without its CRLF). Unknown verbs are returned as parsed: the
// caller's command table decides about them. MAIL and RCPT have their path and parameters
// parsed (paths in the UTF-8 form of RFC 6531, Path::utf8 saying whether they use it); DATA,
// RSET, QUIT and STARTTLS must have no argument; HELO, EHLO and LHLO need one; BDAT takes
// "size [LAST]". Errors: 500 5.5.2 syntax or line too long, 501 5.5.4 bad arguments (also bad
// NOTIFY, ORCPT, RET or ENVID values, RFC 3461), 555 5.5.4 unknown MAIL/RCPT parameter, 553 5.1.3
// bad address, 553 5.6.7 a UTF-8 reverse-path without SMTPUTF8, 501 5.1.3 path too long.
Result<Command> parse_command(std::string_view line, const Limits& limits = {});

// Parses a path including its angle brackets: "<a@b>", "<>" (when allow_null), "<@r1,@r2:a@b>",
// "<\"a b\"@x>", "<u@[127.0.0.1]>". The whole text must be the path. The mailbox in it follows
// the one address grammar (parse_mailbox); `form` is utf8 only in a transaction with SMTPUTF8.
Result<Path> parse_path(std::string_view text, bool allow_null, const Limits& limits = {},
                        AddressForm form = AddressForm::ascii);

// Splits the input into command lines. A line ends at LF (a CR before it is dropped). A line
// longer than max_command_length is reported once as too_long as soon as it is known, and the
// rest of it, through its LF, is then consumed silently: its tail is never read as a command.
class LineReader {
public:
    enum class Status { need_more, line, too_long };
    struct Step {
        Status status = Status::need_more;
        std::string_view line;  // when line: the line without CR LF, pointing into the input
        size_t consumed = 0;    // bytes the caller must drop from its input
    };
    explicit LineReader(size_t max_command_length) : max_(max_command_length) {}
    Step next(std::string_view input);
    bool discarding() const { return discarding_; }

private:
    size_t max_;
    bool discarding_ = false;
};

// Limits of the DATA reader; each breach is 552 5.3.4 (max_received: 554 5.4.6), found while the
// reader keeps consuming.
struct DataLimits {
    uint64_t max_message_size = 10240000;  // the message with CRLF line ends, after unstuffing
    size_t max_line_length = 1000;         // one line on the wire including CRLF (RFC 5321 4.5.3.1.6)
    size_t max_header_size = 102400;       // the header section with CRLF line ends
    size_t max_received = 0;               // Received: header fields allowed (RFC 5321 6.3); 0: any number
};

// 554 5.4.6: more Received: headers than max_received, a mail loop (RFC 5321 6.3).
Error mail_loop_error(size_t max_received);

// message_size_limit counts the message as the client sent it. The trace headers ferry adds on the
// way in (ferry-smtpd's Received:, at most a few hundred bytes) come on top, so a delivery agent
// takes the limit plus this allowance: a message smtpd accepted at exactly the limit is delivered.
inline constexpr uint64_t kTraceAllowance = 16384;

// message_size_limit as a delivery agent applies it (0, no limit, stays 0).
constexpr uint64_t delivery_size_limit(uint64_t message_size_limit) {
    return message_size_limit == 0 ? 0 : message_size_limit + kTraceAllowance;
}

// The DATA reader (RFC 5321 4.1.1.4, 4.5.2): fed any chunks of the bytes after "354", it finds the
// end only at CRLF.CRLF, undoes dot-stuffing and writes the message with LF line ends. A bare LF
// or a CR not followed by LF is an error (SMTP smuggling), and so are a NUL byte (nul_error) and
// a limit breach: after an error nothing more is output, but the reader still consumes through
// the real CRLF.CRLF so no byte of the message is ever taken for a command. Feeding the same
// bytes whole or one at a time gives the same output. An LMTP server uses the same reader.
//
// With Framing::chunked it reads the data of BDAT chunks (RFC 3030) instead: no dot-stuffing and
// no end marker (every byte is message, a "." line included); feed consumes all it is given and
// never says done; the caller calls end_chunks() after the LAST chunk. The same checks and the
// same LF output apply, so a message stored from BDAT is byte for byte the one DATA would store.
class DataReader {
public:
    enum class Status { need_more, done };
    enum class Framing { dot, chunked };
    struct Step {
        Status status = Status::need_more;
        size_t consumed = 0;  // all of the input when need_more; through the final LF when done
    };
    explicit DataReader(const DataLimits& limits = {}, Framing framing = Framing::dot)
        : limits_(limits), framing_(framing) {}
    // Chunked: the last chunk is in. A message ending in a CR without its LF is an error; one
    // ending without a line end is kept as it is.
    void end_chunks();

    // Appends message bytes to `out` (nothing once an error is recorded).
    Step feed(std::string_view input, std::string& out);
    // The first error, when there was one; to be replied once feed returned done.
    const std::optional<Error>& error() const { return error_; }
    // Message size so far with CRLF line ends, as RFC 1870 counts it.
    uint64_t size() const { return size_; }
    bool finished() const { return state_ == State::finished; }

private:
    enum class State { line_start, dot, dot_cr, mid, cr, finished };
    enum class Limit { line, size, header };
    void fail(Error e);
    void bare(char c);
    void emit(std::string_view bytes, bool wire_only, std::string& out);
    void end_line(std::string& out);
    size_t body_lines(std::string_view in, std::string& out);
    Error limit_error(Limit which) const;

    void note_header_line();

    DataLimits limits_;
    Framing framing_ = Framing::dot;
    State state_ = State::line_start;
    std::string line_start_;  // the first octets of the current header line, to spot "Received:"
    size_t received_ = 0;     // Received: fields in the header section so far
    std::optional<Error> error_;
    uint64_t size_ = 0;
    uint64_t header_size_ = 0;
    size_t line_length_ = 0;  // wire bytes of the current line so far, without CRLF
    bool in_header_ = true;
};

// Replies. Control characters in texts become spaces so no peer-supplied text can split a reply.
// "250 2.1.0 Ok\r\n"; a text with '\n' in it becomes a multi-line reply, each line with the code.
std::string reply(int code, std::string_view enhanced, std::string_view text);
std::string reply(const Error& e);
// "250-first\r\n250-second\r\n250 last\r\n" (as EHLO's, without enhanced codes).
std::string reply_lines(int code, const std::vector<std::string>& lines);

// 553 5.6.7: a UTF-8 address in a transaction without SMTPUTF8 (RFC 6531 3.6.1).
Error utf8_without_smtputf8();

// The DATA reader's errors, named so the session and tests agree on them.
Error bare_newline_error();
Error message_too_big_error(uint64_t limit);
// 554 5.6.0: a NUL byte anywhere in the message (RFC 5322 2.3 forbids it; ferry has no BINARYMIME).
Error nul_error();

}  // namespace ferry::smtp
