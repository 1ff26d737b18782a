// Internals shared by the runtime's source files; not installed, not API.
//
//   crc32.cc             CRC-32 (slicing-by-4)
//   image_validate.cc    yono_image_open(): every check, once; accessors
//   image_decode.cc      portable PQ decode of one record (both stages,
//                        both layouts), per-call codeword cache, test hooks
//   image_decode_x86.cc  host AVX-512 VBMI decode (x86-64 builds only)
//   image_rebuild.cc     Rebuild(), decode records (flash tasks), attached
//                        codeword cache
//
// Field offsets, sizes, enum values and limits come from the generated
// yono/image_format.h (yonoc/backend/format_spec.py).
#ifndef YONO_RUNTIME_SRC_IMAGE_INTERNAL_H_
#define YONO_RUNTIME_SRC_IMAGE_INTERNAL_H_

#include <stdint.h>

#include "yono/image.h"
#include "yono/image_format.h"

// Host-only AVX-512 VBMI decode (runtime dispatch, scalar fallback); the MCU
// build and other hosts compile none of it. -DYONO_NO_SIMD turns it off.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(YONO_NO_SIMD)
#define YONO_SIMD_X86 1
#else
#define YONO_SIMD_X86 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define YONO_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define YONO_NOINLINE __declspec(noinline)
#else
#define YONO_NOINLINE
#endif

namespace yono {
namespace internal {

constexpr uint32_t kMaxSubCodebooks = YONO_MAX_SUBCODEBOOKS;

inline uint16_t Rd16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
inline uint32_t Rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
// [off, off+len) inside [0, size)?  64-bit so nothing can wrap.
inline bool InBounds(uint32_t off, uint64_t len, uint32_t size) {
  return static_cast<uint64_t>(off) + len <= size;
}

inline bool IsOpen(const yono_image* im) {
  return im != nullptr && im->data != nullptr;
}

struct Codebook {
  uint32_t s;
  uint32_t k;
  uint32_t data_offset;
  uint32_t data_size;
};
inline Codebook ReadCodebook(const uint8_t* img, uint32_t table, uint32_t i) {
  const uint8_t* p = img + table + i * YONO_CODEBOOK_ENTRY_SIZE;
  return Codebook{p[YONO_CODEBOOK_SUBVECTOR_LEN_OFF],
                  Rd16(p + YONO_CODEBOOK_CODEWORD_COUNT_OFF),
                  Rd32(p + YONO_CODEBOOK_DATA_OFFSET_OFF),
                  Rd32(p + YONO_CODEBOOK_DATA_SIZE_OFF)};
}

struct Task {
  uint32_t name_offset, name_length, model_size, model_crc32;
  uint32_t skeleton_offset, skeleton_size, fill_table_offset, fill_count;
  uint32_t arena_size, flags;
};
inline Task ReadTask(const uint8_t* img, uint32_t table, uint32_t i) {
  const uint8_t* p = img + table + i * YONO_TASK_ENTRY_SIZE;
  return Task{Rd32(p + YONO_TASK_NAME_OFFSET_OFF),
              Rd32(p + YONO_TASK_NAME_LENGTH_OFF),
              Rd32(p + YONO_TASK_MODEL_SIZE_OFF),
              Rd32(p + YONO_TASK_MODEL_CRC32_OFF),
              Rd32(p + YONO_TASK_SKELETON_OFFSET_OFF),
              Rd32(p + YONO_TASK_SKELETON_SIZE_OFF),
              Rd32(p + YONO_TASK_FILL_TABLE_OFFSET_OFF),
              Rd32(p + YONO_TASK_FILL_COUNT_OFF),
              Rd32(p + YONO_TASK_ARENA_SIZE_OFF),
              Rd32(p + YONO_TASK_FLAGS_OFF)};
}

struct Fill {
  uint32_t dst, length;
  uint8_t kind, layout, m;
  uint16_t codebook_first, positions;  // positions = P
  uint32_t src;
  uint16_t inner;  // I
  uint8_t m2;      // PQ_RESIDUAL: residual stage's M
  uint16_t residual_first;
};
inline Fill ReadFill(const uint8_t* p) {
  return Fill{Rd32(p + YONO_FILL_DST_OFFSET_OFF),
              Rd32(p + YONO_FILL_LENGTH_OFF),
              p[YONO_FILL_KIND_OFF],
              p[YONO_FILL_LAYOUT_OFF],
              p[YONO_FILL_CODEBOOK_COUNT_OFF],
              Rd16(p + YONO_FILL_CODEBOOK_FIRST_OFF),
              Rd16(p + YONO_FILL_KERNEL_POSITIONS_OFF),
              Rd32(p + YONO_FILL_SRC_OFFSET_OFF),
              Rd16(p + YONO_FILL_INNER_CHANNELS_OFF),
              p[YONO_FILL_RESIDUAL_COUNT_OFF],
              Rd16(p + YONO_FILL_RESIDUAL_FIRST_OFF)};
}

// binary16 -> int8 as the format specifies (yono_half_to_int8 is this):
// round half away from zero, clamp to [-128, 127], NaN -> 0. Inline because
// codebook conversion runs it K*s times per codebook.
inline int8_t HalfToInt8(uint16_t h) {
  const bool neg = (h & 0x8000u) != 0;
  const uint32_t e = (h >> 10) & 0x1Fu;
  const uint32_t frac = h & 0x3FFu;
  uint32_t mag;  // |round_half_away(v)|, saturated at 255
  if (e == 0x1F) {
    if (frac != 0) return 0;  // NaN
    mag = 255;                // +-inf
  } else if (e < 14) {
    mag = 0;  // |v| < 0.5 (includes subnormals and zeros)
  } else {
    // v = (1024 + frac) * 2^(e - 25)
    const uint32_t m = 0x400u | frac;
    if (e >= 25) {
      mag = 255;  // |v| >= 1024
    } else {
      const uint32_t sh = 25u - e;  // 1..11
      mag = (m + (1u << (sh - 1u))) >> sh;
      if (mag > 255) mag = 255;
    }
  }
  if (neg) {
    return mag >= 128 ? static_cast<int8_t>(-128)
                      : static_cast<int8_t>(-static_cast<int32_t>(mag));
  }
  return mag >= 127 ? static_cast<int8_t>(127) : static_cast<int8_t>(mag);
}

// Index bytes of one PQ stage of a `length`-byte record with sub-vectors of s.
inline uint32_t StageIndexBytes(uint32_t length, uint32_t s) {
  return length / s + (length % s != 0 ? 1u : 0u);
}

// ------------------------------------------------------------ PQ decode ---
// Decoding runs only on images that passed validation, so it performs no
// bounds checks of its own beyond what validation established.

// One PQ record's decode state.
struct Pq {
  const uint8_t* idx;                     // index array
  uint32_t s;                             // subvector_len
  uint32_t m;                             // sub-codebook count M
  const int8_t* cw[kMaxSubCodebooks];     // int8 codewords (cache) or null
  const uint8_t* half[kMaxSubCodebooks];  // binary16 codewords (slow path)
  bool k256;                              // every sub-codebook has K = 256
  // SIMD byte planes of cw[0], cw[1] (kPlaneBytes), or null.
  const uint8_t* planes;
};

// Checks a PQ / PQ_RESIDUAL record's every rule except dst/src (layout,
// M, codebooks, common s, every index < K) against its index array `idx`,
// of which `avail` bytes may be read. *index_bytes = n + n2 on success
// (n2 = 0 for PQ). Out-of-range codebooks -> YONO_BAD_FILL_RECORD,
// indices past `avail` -> YONO_OUT_OF_BOUNDS, an index >= K ->
// YONO_BAD_INDEX. Shared by Open() (fill records) and decode records.
yono_status ValidatePqRecord(const yono_image& im, const Fill& f,
                             const uint8_t* idx, uint64_t avail,
                             uint32_t* index_bytes);

// Per-call codeword cache (no persistent cache attached): codebooks are
// converted on first use into `buf`, remembered in a few slots; when full,
// everything is dropped and refilled.
constexpr uint32_t kCacheSlots = 8;
struct Cache {
  int8_t* buf;
  uint32_t capacity;
  uint32_t used;
  uint32_t slots;
  uint32_t slot_codebook[kCacheSlots];
  uint32_t slot_offset[kCacheSlots];
};

// Decodes a validated PQ / PQ_RESIDUAL record (f.dst, f.src ignored) with
// index array `idx` into out[0, f.length): the image's attached codeword
// cache if any, else `cache` (may have capacity 0: slow path).
void DecodePqRecord(const yono_image& im, const Fill& f, const uint8_t* idx,
                    Cache* cache, uint8_t* out);

// int8 codewords from binary16 (the format's conversion).
void ConvertCodebook(const uint8_t* half, uint32_t n, int8_t* dst);

#if YONO_SIMD_X86
constexpr uint32_t kSimdStep = 128;  // sub-vectors per SIMD step (even)
constexpr uint32_t kPlaneBytes = 2u * 4u * 256u;  // 2 codebooks x s<=4 planes

// The CPU has AVX-512 F/BW/VBMI (checked once).
bool SimdAvailable();
// Fills `planes` (kPlaneBytes, 64-byte aligned) and returns it if the SIMD
// path applies to a record of `length` bytes on this CPU; null otherwise.
const uint8_t* PrepareSimd(const Pq& pq, uint32_t length, uint8_t* planes);
// `count` (a multiple of kSimdStep) sub-vectors starting at sub-codebook m0,
// with pq.planes from PrepareSimd().
void DecodeSimd(const Pq& pq, uint8_t* out, const uint8_t* idx, uint32_t count,
                uint32_t m0);
#endif

}  // namespace internal
}  // namespace yono

#endif  // YONO_RUNTIME_SRC_IMAGE_INTERNAL_H_
