// Records of the per-folder mailbox index (ferry-mailstore(5)): pure framing, encode and decode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::store {

// A record on disk is one line: "<len> <crc> <payload>\n", <len> and <crc> 8 lower-case hex digits,
// <len> the payload's length in bytes, <crc> its CRC-32 (IEEE 802.3). The payload is
// space-separated tokens whose bytes are 0x21..0x7E only ('%' escapes the rest), so '\n' ends a
// record and nothing else: the last record of a file is found by scanning back from its end.
inline constexpr uint32_t kIndexVersion = 1;
inline constexpr size_t kFrameHead = 18;                 // "<8 hex> <8 hex> "
inline constexpr size_t kMaxPayload = 256 * 1024;        // a cached BODYSTRUCTURE is the largest
inline constexpr size_t kMaxKeywords = 1000;             // per folder and per message
inline constexpr size_t kMaxKeyLength = 64;              // cache keys
inline constexpr size_t kMaxFlagLetters = 52;            // A-Z a-z

enum class RecordType : char {
    header = 'H',   // the first record: version, UIDVALIDITY
    keyword = 'K',  // keyword id -> name
    append = 'A',   // a message gets a UID
    flags = 'F',    // its flags or keywords changed
    expunge = 'X',  // it is gone
    cache = 'C',    // a cached value (opaque bytes) for a UID under a key
    vanished = 'V', // snapshots only: UIDs uid..uid_last were expunged by MODSEQ modseq; 0 0 is the floor
    recent = 'R',   // an IMAP session has seen every UID up to uid: none of them is \Recent any more
};

// Every record carries UIDNEXT and HIGHESTMODSEQ as they are after it, so the last record of a
// file tells both without reading the rest.
struct Record {
    RecordType type = RecordType::header;
    uint32_t uidnext = 1;
    uint64_t highest_modseq = 0;
    uint32_t version = kIndexVersion;     // H
    uint32_t uidvalidity = 0;             // H
    uint32_t uid = 0;                     // A F X C V R
    uint32_t uid_last = 0;                // V
    uint64_t modseq = 0;                  // A F X V
    uint32_t keyword_id = 0;              // K
    std::string base;                     // A: the Maildir base name
    std::string flags;                    // A F: Maildir info letters, sorted
    std::vector<uint32_t> keywords;       // A F: keyword ids, ascending
    std::string key;                      // C: cache key; K: keyword name
    std::string value;                    // C: cached bytes
};

uint32_t crc32(std::string_view data);

// '%' and bytes outside 0x21..0x7E become %XX; the empty string is "-" (and "-" itself "%2D").
std::string escape_token(std::string_view s);
bool unescape_token(std::string_view token, std::string& out);

// The framed line of a record.
std::string encode(const Record& r);

enum class Decoded {
    ok,          // `record` holds the first record of the input, `used` bytes long
    incomplete,  // the input ends inside the record: a write in progress, or cut by a crash
    bad,         // a complete record that is wrong (checksum, syntax, limits)
};

struct DecodeResult {
    Decoded status = Decoded::bad;
    size_t used = 0;
    Record record;
    std::string why;  // for bad
};

// Decodes the record at the front of `data`. Pure; refuses leftovers within the record.
DecodeResult decode(std::string_view data);

// The framing of the record at the front of `data` without its checksum or payload checked: for
// the cache file, whose records are checked when read (ok, incomplete, or bad framing).
struct Frame {
    Decoded status = Decoded::bad;
    size_t used = 0;
    std::string_view payload;
};
Frame scan_frame(std::string_view data);
// The framed line of a payload made by the caller (the cache file's raw values).
std::string frame_payload(std::string_view payload);
// Whether a frame's checksum matches its payload.
bool frame_checksum_ok(std::string_view framed);

}  // namespace ferry::store
