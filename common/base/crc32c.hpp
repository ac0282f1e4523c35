// CRC-32C (Castagnoli, RFC 3720 B.4): the checksum that lets a reader tell a whole file from a torn one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ferry {

// Continues `crc` (0 to start) over `len` bytes: crc32c(crc32c(0, a), b) is crc32c(0, a + b).
// Uses the CPU's CRC32 instruction where it has one (SSE 4.2), a table otherwise: same result.
uint32_t crc32c(uint32_t crc, const void* data, size_t len);
inline uint32_t crc32c(uint32_t crc, std::string_view s) { return crc32c(crc, s.data(), s.size()); }

// The table path alone, for tests that hold both paths to the same answers.
uint32_t crc32c_portable(uint32_t crc, const void* data, size_t len);

}  // namespace ferry
