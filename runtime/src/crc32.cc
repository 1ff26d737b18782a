// CRC-32 (IEEE 802.3, zlib's crc32) of the image and of rebuilt models.
#include <stdint.h>

#include "image_internal.h"
#include "yono/image.h"

namespace {

// Slicing-by-4, tables built at compile time (4 KiB of read-only data).
struct CrcTables {
  uint32_t t[4][256];
};
constexpr CrcTables MakeCrcTables() {
  CrcTables c{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t v = i;
    for (int b = 0; b < 8; ++b) v = (v & 1u) ? (v >> 1) ^ 0xEDB88320u : v >> 1;
    c.t[0][i] = v;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int k = 1; k < 4; ++k) {
      const uint32_t prev = c.t[k - 1][i];
      c.t[k][i] = (prev >> 8) ^ c.t[0][prev & 0xFFu];
    }
  }
  return c;
}
constexpr CrcTables kCrc = MakeCrcTables();

}  // namespace

extern "C" {

uint32_t yono_crc32(const uint8_t* data, uint32_t size, uint32_t seed) {
  uint32_t c = ~seed;
  if (data == nullptr) return seed;
  while (size >= 4) {
    c ^= yono::internal::Rd32(data);
    c = kCrc.t[3][c & 0xFFu] ^ kCrc.t[2][(c >> 8) & 0xFFu] ^
        kCrc.t[1][(c >> 16) & 0xFFu] ^ kCrc.t[0][c >> 24];
    data += 4;
    size -= 4;
  }
  while (size-- != 0) c = (c >> 8) ^ kCrc.t[0][(c ^ *data++) & 0xFFu];
  return ~c;
}
}  // extern "C"
