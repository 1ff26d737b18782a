// Shared by corruption_test.cc and corruption_cases.cc: byte helpers over a
// mutable image copy, the parsed layout the targeted mutations poke at, and
// the mutation type.
#ifndef YONO_TESTS_CPP_CORRUPTION_UTIL_H_
#define YONO_TESTS_CPP_CORRUPTION_UTIL_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "yono/image.h"
#include "yono/image_format.h"

// Field offsets, from the generated layout header (never literal numbers).
#define HDR(f) YONO_HEADER_##f##_OFF
#define CB(f) YONO_CODEBOOK_##f##_OFF
#define TASK(f) YONO_TASK_##f##_OFF
#define FILL(f) YONO_FILL_##f##_OFF

namespace corruption {

using yono::Status;

inline uint16_t Get16(const std::vector<uint8_t>& b, size_t o) {
  return static_cast<uint16_t>(b[o] | (b[o + 1] << 8));
}
inline uint32_t Get32(const std::vector<uint8_t>& b, size_t o) {
  return static_cast<uint32_t>(b[o]) | (static_cast<uint32_t>(b[o + 1]) << 8) |
         (static_cast<uint32_t>(b[o + 2]) << 16) |
         (static_cast<uint32_t>(b[o + 3]) << 24);
}
inline void Put16(std::vector<uint8_t>* b, size_t o, uint32_t v) {
  (*b)[o] = static_cast<uint8_t>(v);
  (*b)[o + 1] = static_cast<uint8_t>(v >> 8);
}
inline void Put32(std::vector<uint8_t>* b, size_t o, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    (*b)[o + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}
inline void FixCrc(std::vector<uint8_t>* b) {
  const uint32_t n = Get32(*b, HDR(IMAGE_SIZE));
  if (n < YONO_CRC_START || n > b->size()) return;
  Put32(b, HDR(CRC32),
        yono::Crc32(b->data() + YONO_CRC_START, n - YONO_CRC_START));
}

// Parsed positions of the fields the targeted tests poke at.
struct Layout {
  uint32_t image_size = 0;
  uint32_t cb_table = 0, cb_count = 0, task_table = 0, task_count = 0;
  // First task with fill records, and positions of some of its records.
  int32_t task = -1;
  uint32_t fill_table = 0, fill_count = 0;
  int64_t rec_pq = -1, rec_pq_k1 = -1, rec_raw = -1, rec_zero = -1;
  int64_t rec_res =
      -1;  // a PQ_RESIDUAL record (its first stage is also rec_pq's kind)
};

struct Mutation {
  const char* what;
  Status want;
  std::function<bool(std::vector<uint8_t>*, const Layout&)>
      apply;  // false: not applicable
  bool fix_crc = true;
};

// Section 3 of the test: targeted lies about single fields, each with the
// status Open() must give (CRC recomputed unless fix_crc is false).
std::vector<Mutation> TargetedMutations(const Layout& L);

}  // namespace corruption

#endif  // YONO_TESTS_CPP_CORRUPTION_UTIL_H_
