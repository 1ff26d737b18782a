// yonoc image reader; see include/yono/image.h and docs/image-format.md.
#include "yono/image.h"

#include <string.h>

#include "yono/image_testing.h"

// Host-only AVX-512 VBMI decode (runtime dispatch, scalar fallback); the MCU
// build and other hosts compile none of it.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(YONO_NO_SIMD)
#define YONO_SIMD_X86 1
// GCC 12 flags the intrinsics' own _mm512_undefined_*() as maybe-uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
#else
#define YONO_SIMD_X86 0
#endif

namespace {

// ---------------------------------------------------------------- layout ---
constexpr uint32_t kHeaderSize = 64;
constexpr uint32_t kCodebookEntrySize = 16;
constexpr uint32_t kTaskEntrySize = 64;
constexpr uint32_t kFillRecordSize = 24;
constexpr uint16_t kFormatVersion = 2;
constexpr uint32_t kCrcStart = 16;

constexpr uint8_t kKindZero = 0;
constexpr uint8_t kKindRaw = 1;
constexpr uint8_t kKindPq = 2;
constexpr uint8_t kLayoutLinear = 0;
constexpr uint8_t kLayoutKernelMajor = 1;
constexpr uint32_t kMaxSubvectorLen = 16;
constexpr uint32_t kMaxCodewords = 256;
constexpr uint32_t kMaxSubCodebooks = 4;

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

struct Codebook {
  uint32_t s;
  uint32_t k;
  uint32_t data_offset;
  uint32_t data_size;
};
inline Codebook ReadCodebook(const uint8_t* img, uint32_t table, uint32_t i) {
  const uint8_t* p = img + table + i * kCodebookEntrySize;
  return Codebook{p[1], Rd16(p + 2), Rd32(p + 4), Rd32(p + 8)};
}

struct Task {
  uint32_t name_offset, name_length, model_size, model_crc32;
  uint32_t skeleton_offset, skeleton_size, fill_table_offset, fill_count;
  uint32_t arena_size;
};
inline Task ReadTask(const uint8_t* img, uint32_t table, uint32_t i) {
  const uint8_t* p = img + table + i * kTaskEntrySize;
  return Task{Rd32(p + 0),  Rd32(p + 4),  Rd32(p + 8),
              Rd32(p + 12), Rd32(p + 16), Rd32(p + 20),
              Rd32(p + 24), Rd32(p + 28), Rd32(p + 32)};
}

struct Fill {
  uint32_t dst, length;
  uint8_t kind, layout, m;
  uint16_t codebook_first, positions;  // positions = P
  uint32_t src;
  uint16_t inner;  // I
};
inline Fill ReadFill(const uint8_t* p) {
  return Fill{Rd32(p + 0), Rd32(p + 4),  p[8],        p[9],       p[10],
              Rd16(p + 12), Rd16(p + 14), Rd32(p + 16), Rd16(p + 20)};
}

// ------------------------------------------------------------------ CRC ---
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

// ------------------------------------------------------- status helpers ---
inline bool IsOpen(const yono_image* im) {
  return im != nullptr && im->data != nullptr;
}

// ------------------------------------------------------------ validation ---
yono_status ValidateTask(const yono_image& im, uint32_t t) {
  const uint8_t* img = im.data;
  const uint32_t size = im.size;
  const Task task = ReadTask(img, im.task_table, t);

  if (task.name_length < 1 || task.name_length > 255) return YONO_BAD_TASK;
  if (!InBounds(task.name_offset, uint64_t{task.name_length} + 1, size))
    return YONO_OUT_OF_BOUNDS;
  if (img[task.name_offset + task.name_length] != 0) return YONO_BAD_TASK;
  for (uint32_t i = 0; i < task.name_length; ++i)  // names are C strings: no NUL inside
    if (img[task.name_offset + i] == 0) return YONO_BAD_TASK;
  if (task.model_size > im.max_model_size) return YONO_BAD_HEADER;
  if (task.arena_size > im.max_arena_size) return YONO_BAD_HEADER;
  if (!InBounds(task.skeleton_offset, task.skeleton_size, size))
    return YONO_OUT_OF_BOUNDS;
  if (!InBounds(task.fill_table_offset,
                uint64_t{task.fill_count} * kFillRecordSize, size))
    return YONO_OUT_OF_BOUNDS;

  uint64_t cursor = 0;
  uint64_t filled = 0;
  for (uint32_t r = 0; r < task.fill_count; ++r) {
    const Fill f =
        ReadFill(img + task.fill_table_offset + r * kFillRecordSize);
    if (f.length == 0) return YONO_BAD_FILL_RECORD;
    if (f.dst < cursor) return YONO_BAD_FILL_RECORD;  // unsorted / overlap
    const uint64_t end = uint64_t{f.dst} + f.length;
    if (end > task.model_size) return YONO_BAD_FILL_RECORD;
    cursor = end;
    filled += f.length;
    switch (f.kind) {
      case kKindZero:
        if (f.layout != 0) return YONO_BAD_FILL_RECORD;
        break;
      case kKindRaw:
        if (f.layout != 0) return YONO_BAD_FILL_RECORD;
        if (!InBounds(f.src, f.length, size)) return YONO_OUT_OF_BOUNDS;
        break;
      case kKindPq: {
        if (f.m < 1 || f.m > kMaxSubCodebooks) return YONO_BAD_FILL_RECORD;
        if (uint32_t{f.codebook_first} + f.m > im.codebook_count)
          return YONO_BAD_FILL_RECORD;
        uint32_t k[kMaxSubCodebooks] = {0, 0, 0, 0};
        const uint32_t s =
            ReadCodebook(img, im.codebook_table, f.codebook_first).s;
        for (uint32_t m = 0; m < f.m; ++m) {
          const Codebook cb =
              ReadCodebook(img, im.codebook_table, f.codebook_first + m);
          if (cb.s != s) return YONO_BAD_FILL_RECORD;
          k[m] = cb.k;
        }
        if (f.layout == kLayoutKernelMajor) {
          if (f.positions < 1 || f.inner < 1) return YONO_BAD_FILL_RECORD;
          const uint32_t pi = uint32_t{f.positions} * f.inner;
          if (f.length % pi != 0) return YONO_BAD_FILL_RECORD;
        } else if (f.layout != kLayoutLinear) {
          return YONO_BAD_FILL_RECORD;
        }
        const uint32_t n = f.length / s + (f.length % s != 0 ? 1u : 0u);
        if (!InBounds(f.src, n, size)) return YONO_OUT_OF_BOUNDS;
        const uint8_t* idx = img + f.src;
        bool all_full = true;  // K = 256: every one-byte index is valid
        for (uint32_t m = 0; m < f.m; ++m) all_full = all_full && k[m] == kMaxCodewords;
        if (all_full) {
          // nothing to scan
        } else if (f.m == 1) {
          uint32_t mx = 0;
          for (uint32_t j = 0; j < n; ++j) mx = idx[j] > mx ? idx[j] : mx;
          if (mx >= k[0]) return YONO_BAD_INDEX;
        } else {
          uint32_t m = 0;
          uint32_t bad = 0;
          for (uint32_t j = 0; j < n; ++j) {
            bad |= idx[j] >= k[m] ? 1u : 0u;
            m = (m + 1 == f.m) ? 0 : m + 1;
          }
          if (bad) return YONO_BAD_INDEX;
        }
        break;
      }
      default:
        return YONO_BAD_FILL_RECORD;
    }
  }
  if (filled + task.skeleton_size != task.model_size) return YONO_BAD_TASK;
  return YONO_OK;
}

// --------------------------------------------------------------- decode ---
// Everything below runs only on images that passed ValidateTask(), so it
// performs no bounds checks of its own beyond what validation established.

constexpr uint32_t kTransposeBytes = 1024;  // stack buffer for layout 1

struct Pq {
  const uint8_t* idx;                  // index array
  uint32_t s;                          // subvector_len
  uint32_t m;                          // sub-codebook count M
  const int8_t* cw[kMaxSubCodebooks];  // int8 codewords (cache) or null
  const uint8_t* half[kMaxSubCodebooks];  // binary16 codewords (slow path)
  bool k256;                           // every sub-codebook has K = 256
  const uint8_t* planes;  // SIMD byte planes of cw[0], cw[1] (kPlaneBytes), or null
};

// One codeword as int8 into out[0, n) starting at value `from`.
inline void CodewordSlow(const Pq& pq, uint32_t m, uint32_t k, uint32_t from,
                         uint32_t n, uint8_t* out) {
  const uint8_t* h = pq.half[m] + 2u * (k * pq.s + from);
  for (uint32_t t = 0; t < n; ++t)
    out[t] = static_cast<uint8_t>(yono_half_to_int8(Rd16(h + 2u * t)));
}
inline void Codeword(const Pq& pq, uint32_t m, uint32_t k, uint32_t from,
                     uint32_t n, uint8_t* out) {
  if (pq.cw[0] != nullptr) {
    memcpy(out, pq.cw[m] + k * pq.s + from, n);
  } else {
    CodewordSlow(pq, m, k, from, n, out);
  }
}

// Copy `count` whole sub-vectors with indices idx[0..count) starting at
// sub-codebook m0, S bytes each, from the int8 codeword cache.
template <uint32_t S>
void CopyFull(uint8_t* out, const uint8_t* idx, uint32_t count, const Pq& pq,
              uint32_t m0) {
  if (pq.m == 1) {
    const int8_t* c = pq.cw[0];
    for (uint32_t j = 0; j < count; ++j) memcpy(out + j * S, c + idx[j] * S, S);
    return;
  }
  uint32_t j = 0;
  uint32_t m = m0;
  // Align to the start of an M-cycle.
  while (m != 0 && j < count) {
    memcpy(out + j * S, pq.cw[m] + idx[j] * S, S);
    ++j;
    m = (m + 1 == pq.m) ? 0 : m + 1;
  }
  if (pq.m == 2) {
    const int8_t* c0 = pq.cw[0];
    const int8_t* c1 = pq.cw[1];
    if (S == 4) {
      // Eight sub-vectors (32 bytes) per step: one 64-bit index load, pairs
      // of codewords assembled into 64-bit stores (little-endian, like the
      // four-per-step path below).
      for (; j + 8 <= count; j += 8) {
        uint64_t ix;
        memcpy(&ix, idx + j, 8);
        for (uint32_t q = 0; q < 8; q += 2) {
          uint32_t v0, v1;
          memcpy(&v0, c0 + ((ix >> (8 * q)) & 0xFFu) * 4u, 4);
          memcpy(&v1, c1 + ((ix >> (8 * q + 8)) & 0xFFu) * 4u, 4);
          const uint64_t w = uint64_t{v0} | (uint64_t{v1} << 32);
          memcpy(out + (j + q) * 4u, &w, 8);
        }
      }
    }
    if (S == 2 || S == 4) {
      // Four sub-vectors per step, assembled in registers: one index word
      // load and word-sized stores.
      for (; j + 4 <= count; j += 4) {
        uint32_t ix;
        memcpy(&ix, idx + j, 4);
        if (S == 2) {
          uint16_t v0, v1, v2, v3;
          memcpy(&v0, c0 + (ix & 0xFFu) * S, 2);
          memcpy(&v1, c1 + ((ix >> 8) & 0xFFu) * S, 2);
          memcpy(&v2, c0 + ((ix >> 16) & 0xFFu) * S, 2);
          memcpy(&v3, c1 + (ix >> 24) * S, 2);
          const uint32_t lo = uint32_t{v0} | (uint32_t{v1} << 16);
          const uint32_t hi = uint32_t{v2} | (uint32_t{v3} << 16);
          memcpy(out + j * S, &lo, 4);
          memcpy(out + j * S + 4, &hi, 4);
        } else {
          memcpy(out + j * S, c0 + (ix & 0xFFu) * S, S);
          memcpy(out + (j + 1) * S, c1 + ((ix >> 8) & 0xFFu) * S, S);
          memcpy(out + (j + 2) * S, c0 + ((ix >> 16) & 0xFFu) * S, S);
          memcpy(out + (j + 3) * S, c1 + (ix >> 24) * S, S);
        }
      }
    }
    for (; j + 2 <= count; j += 2) {
      memcpy(out + j * S, c0 + idx[j] * S, S);
      memcpy(out + (j + 1) * S, c1 + idx[j + 1] * S, S);
    }
  } else {
    const uint32_t mm = pq.m;
    for (; j + mm <= count; j += mm) {
      for (uint32_t q = 0; q < mm; ++q)
        memcpy(out + (j + q) * S, pq.cw[q] + idx[j + q] * S, S);
    }
  }
  for (uint32_t q = 0; j < count; ++j, ++q)
    memcpy(out + j * S, pq.cw[q] + idx[j] * S, S);
}

// Any s, cached or not.
void CopyFullGeneric(uint8_t* out, const uint8_t* idx, uint32_t count,
                     const Pq& pq, uint32_t m0) {
  const uint32_t s = pq.s;
  uint32_t m = m0;
  if (pq.cw[0] != nullptr) {
    for (uint32_t j = 0; j < count; ++j) {
      const int8_t* c = pq.cw[m] + idx[j] * s;
      uint8_t* o = out + j * s;
      for (uint32_t t = 0; t < s; ++t) o[t] = static_cast<uint8_t>(c[t]);
      m = (m + 1 == pq.m) ? 0 : m + 1;
    }
  } else {
    for (uint32_t j = 0; j < count; ++j) {
      CodewordSlow(pq, m, idx[j], 0, s, out + j * s);
      m = (m + 1 == pq.m) ? 0 : m + 1;
    }
  }
}

// ------------------------------------------------- host SIMD (x86-64) ---
// Records with s in {2, 4}, M <= 2 and K = 256 (what yonoc writes) decode 128
// sub-vectors per step with AVX-512 VBMI byte permutes instead of scalar
// table loads. Each codebook is split into s byte planes of 256 entries
// (plane p, entry k = byte p of codeword k); a 256-entry byte lookup is two
// 128-byte vpermt2b lookups blended on the index's top bit. M = 2 alternates
// codebooks per index: even and odd indices are split apart, looked up in
// their own planes, and the unpacks that rebuild the codewords also merge
// them back; the split order is chosen so the in-lane unpacks land in place.
#if YONO_SIMD_X86
#define YONO_TARGET_VBMI __attribute__((target("avx512f,avx512bw,avx512vbmi")))

constexpr uint32_t kSimdStep = 128;  // sub-vectors per SIMD step (even)
constexpr uint32_t kPlaneBytes = 2u * 4u * 256u;  // 2 codebooks x s<=4 planes

struct SimdConsts {
  uint8_t split2[2][64]; // s=2 codebook -> planes: byte 2k+p
  uint8_t split4[64];    // s=4: 128-bit lane p of the result = bytes 4k+p
  uint8_t even4[2][64];  // s=4: even / odd indices of 128, in unpack order
  uint8_t even2[2][64];  // same for s=2
};
constexpr SimdConsts MakeSimdConsts() {
  SimdConsts c{};
  for (uint32_t pos = 0; pos < 64; ++pos) {
    const uint32_t lane = pos / 16, g2 = (pos / 8) % 2, g4 = (pos / 4) % 4;
    c.split2[0][pos] = static_cast<uint8_t>(2u * pos);
    c.split2[1][pos] = static_cast<uint8_t>(2u * pos + 1u);
    c.split4[pos] = static_cast<uint8_t>(4u * (pos % 16) + pos / 16);
    // Three unpack levels (bytes, words, then even/odd dwords) put position
    // 16L + 4g + 2h + t into output vector 2g + h, lane L, sub-vector 2t (+1
    // for odd): feed it index 32g + 16h + 4L + 2t.
    const uint32_t h4 = (pos / 2) % 2, t4 = pos % 2;
    const uint32_t ev = 32u * g4 + 16u * h4 + 4u * lane + 2u * t4;
    c.even4[0][pos] = static_cast<uint8_t>(ev);
    c.even4[1][pos] = static_cast<uint8_t>(ev + 1u);
    // s=2: bytes, then even/odd words: position 16L + 8g + 4h + t goes to
    // output vector 2g + h, lane L, sub-vector 2t (+1 for odd).
    const uint32_t h2 = (pos / 4) % 2, t2 = pos % 4;
    const uint32_t ev2 = 64u * g2 + 32u * h2 + 8u * lane + 2u * t2;
    c.even2[0][pos] = static_cast<uint8_t>(ev2);
    c.even2[1][pos] = static_cast<uint8_t>(ev2 + 1u);
  }
  return c;
}

alignas(64) constexpr SimdConsts kSimd = MakeSimdConsts();

bool SimdAvailable() {
  static const bool ok = __builtin_cpu_supports("avx512f") &&
                         __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vbmi");
  return ok;
}

// Planes of one K = 256 codebook: planes[p * 256 + k] = cw[k * s + p].
YONO_TARGET_VBMI void BuildPlanes(const int8_t* cw, uint32_t s, uint8_t* planes) {
  if (s == 2) {
    const __m512i e = _mm512_loadu_si512(kSimd.split2[0]);
    const __m512i o = _mm512_loadu_si512(kSimd.split2[1]);
    for (uint32_t q = 0; q < 4; ++q) {
      const __m512i a = _mm512_loadu_si512(cw + 128u * q);
      const __m512i b = _mm512_loadu_si512(cw + 128u * q + 64u);
      _mm512_storeu_si512(planes + 64u * q, _mm512_permutex2var_epi8(a, e, b));
      _mm512_storeu_si512(planes + 256u + 64u * q, _mm512_permutex2var_epi8(a, o, b));
    }
    return;
  }
  const __m512i split = _mm512_loadu_si512(kSimd.split4);
  for (uint32_t q = 0; q < 4; ++q) {  // 64 codewords: a 4x4 transpose of 128-bit lanes
    const int8_t* c = cw + 256u * q;
    const __m512i d0 = _mm512_permutexvar_epi8(split, _mm512_loadu_si512(c));
    const __m512i d1 = _mm512_permutexvar_epi8(split, _mm512_loadu_si512(c + 64));
    const __m512i d2 = _mm512_permutexvar_epi8(split, _mm512_loadu_si512(c + 128));
    const __m512i d3 = _mm512_permutexvar_epi8(split, _mm512_loadu_si512(c + 192));
    const __m512i t0 = _mm512_shuffle_i64x2(d0, d1, 0x44);
    const __m512i t1 = _mm512_shuffle_i64x2(d0, d1, 0xEE);
    const __m512i t2 = _mm512_shuffle_i64x2(d2, d3, 0x44);
    const __m512i t3 = _mm512_shuffle_i64x2(d2, d3, 0xEE);
    uint8_t* p = planes + 64u * q;
    _mm512_storeu_si512(p, _mm512_shuffle_i64x2(t0, t2, 0x88));
    _mm512_storeu_si512(p + 256, _mm512_shuffle_i64x2(t0, t2, 0xDD));
    _mm512_storeu_si512(p + 512, _mm512_shuffle_i64x2(t1, t3, 0x88));
    _mm512_storeu_si512(p + 768, _mm512_shuffle_i64x2(t1, t3, 0xDD));
  }
}

// 256-entry byte lookup of 64 indices in one plane (4 zmm).
YONO_TARGET_VBMI inline __m512i Lookup256(const __m512i* t, __m512i x, __mmask64 hi) {
  const __m512i lo = _mm512_permutex2var_epi8(t[0], x, t[1]);
  const __m512i up = _mm512_permutex2var_epi8(t[2], x, t[3]);
  return _mm512_mask_blend_epi8(hi, lo, up);
}

// The S planes of one codebook (BuildPlanes layout) into registers.
template <uint32_t S>
YONO_TARGET_VBMI inline void LoadPlanes(const uint8_t* planes, __m512i (*t)[4]) {
  for (uint32_t p = 0; p < S; ++p)
    for (uint32_t h = 0; h < 4; ++h) t[p][h] = _mm512_load_si512(planes + 256u * p + 64u * h);
}

// count (a multiple of 128) sub-vectors of s = 2; index j uses planes pe for
// even j, po for odd j. Even and odd indices are split first so each lookup
// serves one codebook.
YONO_TARGET_VBMI void DecodeSimd2(uint8_t* out, const uint8_t* idx, uint32_t count,
                                  const uint8_t* pe, const uint8_t* po) {
  __m512i e[2][4], o[2][4];
  LoadPlanes<2>(pe, e);
  LoadPlanes<2>(po, o);
  const __m512i sel_e = _mm512_loadu_si512(kSimd.even2[0]);
  const __m512i sel_o = _mm512_loadu_si512(kSimd.even2[1]);
  for (uint32_t j = 0; j < count; j += kSimdStep) {
    const __m512i a = _mm512_loadu_si512(idx + j);
    const __m512i b = _mm512_loadu_si512(idx + j + 64);
    const __m512i xe = _mm512_permutex2var_epi8(a, sel_e, b);
    const __m512i xo = _mm512_permutex2var_epi8(a, sel_o, b);
    const __mmask64 he = _mm512_movepi8_mask(xe), ho = _mm512_movepi8_mask(xo);
    const __m512i e0 = Lookup256(e[0], xe, he), e1 = Lookup256(e[1], xe, he);
    const __m512i o0 = Lookup256(o[0], xo, ho), o1 = Lookup256(o[1], xo, ho);
    const __m512i ue[2] = {_mm512_unpacklo_epi8(e0, e1), _mm512_unpackhi_epi8(e0, e1)};
    const __m512i uo[2] = {_mm512_unpacklo_epi8(o0, o1), _mm512_unpackhi_epi8(o0, o1)};
    uint8_t* d = out + 2u * j;
    for (uint32_t g = 0; g < 2; ++g) {
      _mm512_storeu_si512(d + 128u * g, _mm512_unpacklo_epi16(ue[g], uo[g]));
      _mm512_storeu_si512(d + 128u * g + 64u, _mm512_unpackhi_epi16(ue[g], uo[g]));
    }
  }
}

// One codebook's four planes of s = 4, looked up for 64 indices and
// interleaved into 16-byte groups: w[g] lane L dword i <- position 16L+4g+i.
YONO_TARGET_VBMI inline void Lookup4(const __m512i (*t)[4], __m512i x, __m512i* w) {
  const __mmask64 hi = _mm512_movepi8_mask(x);
  __m512i p[4];
  for (uint32_t q = 0; q < 4; ++q) p[q] = Lookup256(t[q], x, hi);
  const __m512i u0 = _mm512_unpacklo_epi8(p[0], p[1]), u1 = _mm512_unpackhi_epi8(p[0], p[1]);
  const __m512i v0 = _mm512_unpacklo_epi8(p[2], p[3]), v1 = _mm512_unpackhi_epi8(p[2], p[3]);
  w[0] = _mm512_unpacklo_epi16(u0, v0);
  w[1] = _mm512_unpackhi_epi16(u0, v0);
  w[2] = _mm512_unpacklo_epi16(u1, v1);
  w[3] = _mm512_unpackhi_epi16(u1, v1);
}

// s = 4, 128 sub-vectors per step: even and odd indices are split first so
// every lookup serves one codebook.
YONO_TARGET_VBMI void DecodeSimd4(uint8_t* out, const uint8_t* idx, uint32_t count,
                                  const uint8_t* pe, const uint8_t* po) {
  __m512i e[4][4], o[4][4];
  LoadPlanes<4>(pe, e);
  LoadPlanes<4>(po, o);
  const __m512i sel_e = _mm512_loadu_si512(kSimd.even4[0]);
  const __m512i sel_o = _mm512_loadu_si512(kSimd.even4[1]);
  for (uint32_t j = 0; j < count; j += kSimdStep) {
    const __m512i a = _mm512_loadu_si512(idx + j);
    const __m512i b = _mm512_loadu_si512(idx + j + 64);
    __m512i we[4], wo[4];
    Lookup4(e, _mm512_permutex2var_epi8(a, sel_e, b), we);
    Lookup4(o, _mm512_permutex2var_epi8(a, sel_o, b), wo);
    uint8_t* d = out + 4u * j;
    for (uint32_t g = 0; g < 4; ++g) {
      _mm512_storeu_si512(d + 128u * g, _mm512_unpacklo_epi32(we[g], wo[g]));
      _mm512_storeu_si512(d + 128u * g + 64u, _mm512_unpackhi_epi32(we[g], wo[g]));
    }
  }
}

// Fills `planes` (kPlaneBytes, 64-byte aligned) and returns it if the SIMD
// path applies to a record of `length` bytes on this CPU; null otherwise.
const uint8_t* PrepareSimd(const Pq& pq, uint32_t length, uint8_t* planes) {
  // Building the planes costs about as much as decoding a few blocks.
  if (pq.cw[0] == nullptr || !pq.k256 || pq.m > 2 || (pq.s != 2 && pq.s != 4) ||
      length < 2u * kSimdStep * pq.s || !SimdAvailable())
    return nullptr;
  BuildPlanes(pq.cw[0], pq.s, planes);
  if (pq.m == 2) BuildPlanes(pq.cw[1], pq.s, planes + kPlaneBytes / 2);
  return planes;
}

#endif  // YONO_SIMD_X86

// Sub-vectors [0, count) starting at sub-codebook m0, from the int8 cache.
void CopyFullCached(uint8_t* out, const uint8_t* idx, uint32_t count,
                    const Pq& pq, uint32_t m0) {
#if YONO_SIMD_X86
  if (pq.planes != nullptr && count >= kSimdStep) {
    const uint32_t n = count - count % kSimdStep;  // even: the phase is kept
    const uint8_t* p0 = pq.planes;
    const uint8_t* p1 = pq.m == 2 ? pq.planes + kPlaneBytes / 2 : p0;
    const uint8_t* pe = m0 == 0 ? p0 : p1;
    const uint8_t* po = m0 == 0 ? p1 : p0;
    if (pq.s == 2) {
      DecodeSimd2(out, idx, n, pe, po);
    } else {
      DecodeSimd4(out, idx, n, pe, po);
    }
    out += n * pq.s;
    idx += n;
    count -= n;
    if (count == 0) return;
  }
#endif
  switch (pq.s) {
    case 2: CopyFull<2>(out, idx, count, pq, m0); break;
    case 4: CopyFull<4>(out, idx, count, pq, m0); break;
    case 8: CopyFull<8>(out, idx, count, pq, m0); break;
    case 16: CopyFull<16>(out, idx, count, pq, m0); break;
    case 9: CopyFull<9>(out, idx, count, pq, m0); break;
    case 1: CopyFull<1>(out, idx, count, pq, m0); break;
    case 3: CopyFull<3>(out, idx, count, pq, m0); break;
    case 6: CopyFull<6>(out, idx, count, pq, m0); break;
    default: CopyFullGeneric(out, idx, count, pq, m0); break;
  }
}

// Vector-order elements [a, b) of a PQ record into out[0, b-a).
void DecodeRange(const Pq& pq, uint32_t a, uint32_t b, uint8_t* out) {
  const uint32_t s = pq.s;
  uint32_t j = a / s;
  const uint32_t off = a - j * s;
  uint32_t m = j % pq.m;
  if (off != 0) {
    const uint32_t n = (s - off < b - a) ? s - off : b - a;
    Codeword(pq, m, pq.idx[j], off, n, out);
    out += n;
    a += n;
    ++j;
    m = (m + 1 == pq.m) ? 0 : m + 1;
  }
  const uint32_t full = (b - a) / s;
  if (full != 0) {
    const uint8_t* idx = pq.idx + j;
    if (pq.cw[0] == nullptr) {
      CopyFullGeneric(out, idx, full, pq, m);
    } else {
      CopyFullCached(out, idx, full, pq, m);
    }
    out += full * s;
    a += full * s;
    j += full;
    m = (m + full) % pq.m;
  }
  if (a < b) Codeword(pq, m, pq.idx[j], 0, b - a, out);
}

// Layout 1: vector order walks [O, I, P], memory is [O, P, I].
void DecodeKernelMajor(const Pq& pq, uint32_t length, uint32_t p_count,
                       uint32_t i_count, uint8_t* out) {
  uint8_t tmp[kTransposeBytes];
  const uint32_t pi = p_count * i_count;
  const uint32_t o_count = length / pi;
  if (p_count <= kTransposeBytes) {
    // Decode C channels (C*P contiguous vector-order values) at a time, then
    // write each kernel position's C bytes contiguously.
    const uint32_t c_max =
        i_count < kTransposeBytes / p_count ? i_count : kTransposeBytes / p_count;
    for (uint32_t o = 0; o < o_count; ++o) {
      uint8_t* out_o = out + o * pi;
      for (uint32_t i0 = 0; i0 < i_count; i0 += c_max) {
        const uint32_t c = (i_count - i0 < c_max) ? i_count - i0 : c_max;
        const uint32_t e0 = o * pi + i0 * p_count;
        DecodeRange(pq, e0, e0 + c * p_count, tmp);
        if (p_count == 9) {
          for (uint32_t p = 0; p < 9; ++p) {
            uint8_t* d = out_o + p * i_count + i0;
            const uint8_t* t = tmp + p;
            uint32_t ci = 0;
            for (; ci + 4 <= c; ci += 4) {
              const uint32_t w = uint32_t{t[ci * 9]} | (uint32_t{t[ci * 9 + 9]} << 8) |
                                 (uint32_t{t[ci * 9 + 18]} << 16) |
                                 (uint32_t{t[ci * 9 + 27]} << 24);
              memcpy(d + ci, &w, 4);
            }
            for (; ci < c; ++ci) d[ci] = t[ci * 9];
          }
        } else {
          for (uint32_t p = 0; p < p_count; ++p) {
            uint8_t* d = out_o + p * i_count + i0;
            const uint8_t* t = tmp + p;
            for (uint32_t ci = 0; ci < c; ++ci) d[ci] = t[ci * p_count];
          }
        }
      }
    }
    return;
  }
  // Huge kernels: element-wise scatter in chunks.
  uint32_t o = 0, i = 0, p = 0;
  for (uint32_t e = 0; e < length; e += kTransposeBytes) {
    const uint32_t n =
        (length - e < kTransposeBytes) ? length - e : kTransposeBytes;
    DecodeRange(pq, e, e + n, tmp);
    for (uint32_t t = 0; t < n; ++t) {
      out[o * pi + p * i_count + i] = tmp[t];
      if (++p == p_count) {
        p = 0;
        if (++i == i_count) {
          i = 0;
          ++o;
        }
      }
    }
  }
}

// Per-Rebuild codeword cache (no persistent cache attached): codebooks are
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

void ConvertCodebook(const uint8_t* half, uint32_t n, int8_t* dst) {
  for (uint32_t t = 0; t < n; ++t) dst[t] = yono_half_to_int8(Rd16(half + 2u * t));
}

const int8_t* CacheLookup(Cache* cache, uint32_t codebook) {
  for (uint32_t i = 0; i < cache->slots; ++i)
    if (cache->slot_codebook[i] == codebook) return cache->buf + cache->slot_offset[i];
  return nullptr;
}

// Set up pq for record f.
void PreparePq(const yono_image& im, const Fill& f, Cache* cache, Pq* pq) {
  const uint8_t* img = im.data;
  pq->idx = img + f.src;
  pq->m = f.m;
  pq->s = ReadCodebook(img, im.codebook_table, f.codebook_first).s;
  for (uint32_t m = 0; m < kMaxSubCodebooks; ++m) {
    pq->cw[m] = nullptr;
    pq->half[m] = nullptr;
  }
  pq->k256 = true;
  pq->planes = nullptr;
  uint32_t need = 0;
  for (uint32_t m = 0; m < f.m; ++m) {
    const Codebook cb = ReadCodebook(img, im.codebook_table, f.codebook_first + m);
    pq->half[m] = img + cb.data_offset;
    pq->k256 = pq->k256 && cb.k == kMaxCodewords;
    need += cb.k * cb.s;
  }
  if (im.cw_cache != nullptr) {
    for (uint32_t m = 0; m < f.m; ++m)
      pq->cw[m] = im.cw_cache + (f.codebook_first + m) * im.cw_stride;
    return;
  }
  if (need > cache->capacity) return;  // slow path: convert per codeword
  for (int pass = 0; pass < 2; ++pass) {
    bool ok = true;
    for (uint32_t m = 0; m < f.m && ok; ++m) {
      const uint32_t c = f.codebook_first + m;
      const int8_t* hit = CacheLookup(cache, c);
      if (hit != nullptr) {
        pq->cw[m] = hit;
        continue;
      }
      const Codebook cb = ReadCodebook(img, im.codebook_table, c);
      const uint32_t n = cb.k * cb.s;
      if (cache->slots == kCacheSlots || cache->used + n > cache->capacity) {
        ok = false;
        break;
      }
      int8_t* dst = cache->buf + cache->used;
      ConvertCodebook(pq->half[m], n, dst);
      cache->slot_codebook[cache->slots] = c;
      cache->slot_offset[cache->slots] = cache->used;
      ++cache->slots;
      cache->used += n;
      pq->cw[m] = dst;
    }
    if (ok) return;
    cache->slots = 0;  // full: start over (the record alone fits: need <= capacity)
    cache->used = 0;
  }
}

yono_status RebuildImpl(const yono_image* im, uint32_t task_index,
                        uint8_t* dst, uint32_t dst_size, uint32_t* written,
                        int8_t* cache_buf, uint32_t cache_size) {
  if (written != nullptr) *written = 0;
  if (!IsOpen(im)) return YONO_NOT_OPEN;
  if (task_index >= im->task_count) return YONO_NO_SUCH_TASK;
  if (dst == nullptr) return YONO_BAD_ARGUMENT;
  if ((reinterpret_cast<uintptr_t>(dst) & (YONO_MODEL_ALIGNMENT - 1u)) != 0)
    return YONO_BAD_ALIGNMENT;
  const uint8_t* img = im->data;
  const Task task = ReadTask(img, im->task_table, task_index);
  if (dst_size < task.model_size) return YONO_REGION_TOO_SMALL;

  Cache cache{cache_buf, cache_buf != nullptr ? cache_size : 0u, 0, 0, {}, {}};
#if YONO_SIMD_X86
  alignas(64) uint8_t planes[kPlaneBytes];
#endif
  const uint8_t* skel = img + task.skeleton_offset;
  const uint8_t* rec = img + task.fill_table_offset;
  uint32_t cursor = 0;
  for (uint32_t r = 0; r < task.fill_count; ++r, rec += kFillRecordSize) {
    const Fill f = ReadFill(rec);
    const uint32_t gap = f.dst - cursor;
    if (gap != 0) {
      memcpy(dst + cursor, skel, gap);
      skel += gap;
    }
    uint8_t* out = dst + f.dst;
    switch (f.kind) {
      case kKindZero:
        memset(out, 0, f.length);
        break;
      case kKindRaw:
        memcpy(out, img + f.src, f.length);
        break;
      default: {  // kKindPq (validated)
        Pq pq;
        PreparePq(*im, f, &cache, &pq);
#if YONO_SIMD_X86
        pq.planes = PrepareSimd(pq, f.length, planes);
#endif
        if (f.layout == kLayoutKernelMajor) {
          DecodeKernelMajor(pq, f.length, f.positions, f.inner, out);
        } else {
          DecodeRange(pq, 0, f.length, out);
        }
        break;
      }
    }
    cursor = f.dst + f.length;
  }
  if (task.model_size > cursor) memcpy(dst + cursor, skel, task.model_size - cursor);
  if (written != nullptr) *written = task.model_size;
  return YONO_OK;
}

}  // namespace

extern "C" {

uint32_t yono_crc32(const uint8_t* data, uint32_t size, uint32_t seed) {
  uint32_t c = ~seed;
  if (data == nullptr) return seed;
  while (size >= 4) {
    c ^= Rd32(data);
    c = kCrc.t[3][c & 0xFFu] ^ kCrc.t[2][(c >> 8) & 0xFFu] ^
        kCrc.t[1][(c >> 16) & 0xFFu] ^ kCrc.t[0][c >> 24];
    data += 4;
    size -= 4;
  }
  while (size-- != 0) c = (c >> 8) ^ kCrc.t[0][(c ^ *data++) & 0xFFu];
  return ~c;
}

const char* yono_status_string(yono_status status) {
  switch (status) {
    case YONO_OK: return "ok";
    case YONO_TOO_SMALL: return "buffer smaller than the image";
    case YONO_BAD_MAGIC: return "bad magic (not a yonoc image)";
    case YONO_BAD_VERSION: return "unsupported format_version";
    case YONO_BAD_HEADER: return "invalid header field";
    case YONO_BAD_CRC: return "image CRC-32 mismatch";
    case YONO_OUT_OF_BOUNDS: return "offset/size outside the image";
    case YONO_BAD_CODEBOOK: return "invalid codebook entry";
    case YONO_BAD_TASK: return "invalid task entry";
    case YONO_BAD_FILL_RECORD: return "invalid fill record";
    case YONO_BAD_INDEX: return "PQ index out of codebook range";
    case YONO_REGION_TOO_SMALL: return "model region smaller than model_size";
    case YONO_NO_SUCH_TASK: return "no such task";
    case YONO_NOT_OPEN: return "image not open";
    case YONO_BAD_ALIGNMENT: return "model region not 16-byte aligned";
    case YONO_BAD_ARGUMENT: return "null argument";
    default: return "unknown status";
  }
}

int8_t yono_half_to_int8(uint16_t h) {
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

yono_status yono_image_open(yono_image* image, const uint8_t* data,
                            uint32_t size) {
  if (image == nullptr) return YONO_BAD_ARGUMENT;
  *image = yono_image{};
  if (data == nullptr) return YONO_BAD_ARGUMENT;
  if (size < kHeaderSize) return YONO_TOO_SMALL;
  if (data[0] != 'Y' || data[1] != 'O' || data[2] != 'N' || data[3] != 'O')
    return YONO_BAD_MAGIC;
  if (Rd16(data + 4) != kFormatVersion) return YONO_BAD_VERSION;
  if (Rd16(data + 6) != kHeaderSize) return YONO_BAD_HEADER;
  const uint32_t image_size = Rd32(data + 8);
  if (image_size < kHeaderSize) return YONO_BAD_HEADER;
  if (image_size > size) return YONO_TOO_SMALL;
  if (yono_crc32(data + kCrcStart, image_size - kCrcStart, 0) !=
      Rd32(data + 12))
    return YONO_BAD_CRC;
  if (Rd32(data + 16) != 0) return YONO_BAD_HEADER;  // flags

  yono_image im{};
  im.data = data;
  im.size = image_size;
  im.codebook_count = Rd16(data + 20);
  im.task_count = Rd16(data + 22);
  im.codebook_table = Rd32(data + 24);
  im.task_table = Rd32(data + 28);
  im.max_model_size = Rd32(data + 32);
  im.max_arena_size = Rd32(data + 36);
  if (im.task_count == 0) return YONO_BAD_HEADER;
  // Build notes: opaque to the runtime, but they must lie inside the image.
  const uint32_t notes_offset = Rd32(data + 40);
  const uint32_t notes_size = Rd32(data + 44);
  if (notes_size == 0 && notes_offset != 0) return YONO_BAD_HEADER;
  if (!InBounds(notes_offset, notes_size, image_size)) return YONO_OUT_OF_BOUNDS;
  if (!InBounds(im.codebook_table,
                uint64_t{im.codebook_count} * kCodebookEntrySize, image_size) ||
      !InBounds(im.task_table, uint64_t{im.task_count} * kTaskEntrySize,
                image_size))
    return YONO_OUT_OF_BOUNDS;

  for (uint32_t i = 0; i < im.codebook_count; ++i) {
    const Codebook cb = ReadCodebook(data, im.codebook_table, i);
    if (cb.s < 1 || cb.s > kMaxSubvectorLen || cb.k < 1 ||
        cb.k > kMaxCodewords || cb.data_size != cb.k * cb.s * 2u)
      return YONO_BAD_CODEBOOK;
    if (!InBounds(cb.data_offset, cb.data_size, image_size))
      return YONO_OUT_OF_BOUNDS;
    if (cb.k * cb.s > im.cw_stride) im.cw_stride = cb.k * cb.s;
  }
  for (uint32_t t = 0; t < im.task_count; ++t) {
    const yono_status st = ValidateTask(im, t);
    if (st != YONO_OK) return st;
  }
  *image = im;
  return YONO_OK;
}

uint32_t yono_image_codeword_cache_size(const yono_image* image) {
  return IsOpen(image) ? image->codebook_count * image->cw_stride : 0u;
}

yono_status yono_image_attach_codeword_cache(yono_image* image, uint8_t* cache,
                                             uint32_t size) {
  if (!IsOpen(image)) return YONO_NOT_OPEN;
  image->cw_cache = nullptr;
  if (cache == nullptr) return YONO_OK;
  if (size < yono_image_codeword_cache_size(image)) return YONO_REGION_TOO_SMALL;
  int8_t* dst = reinterpret_cast<int8_t*>(cache);
  for (uint32_t c = 0; c < image->codebook_count; ++c) {
    const Codebook cb = ReadCodebook(image->data, image->codebook_table, c);
    ConvertCodebook(image->data + cb.data_offset, cb.k * cb.s, dst + c * image->cw_stride);
  }
  image->cw_cache = dst;
  return YONO_OK;
}

uint32_t yono_image_task_count(const yono_image* image) {
  return IsOpen(image) ? image->task_count : 0u;
}

const char* yono_image_task_name(const yono_image* image, uint32_t task) {
  if (!IsOpen(image) || task >= image->task_count) return nullptr;
  const Task t = ReadTask(image->data, image->task_table, task);
  return reinterpret_cast<const char*>(image->data + t.name_offset);
}

uint32_t yono_image_model_size(const yono_image* image, uint32_t task) {
  if (!IsOpen(image) || task >= image->task_count) return 0;
  return ReadTask(image->data, image->task_table, task).model_size;
}

uint32_t yono_image_arena_size(const yono_image* image, uint32_t task) {
  if (!IsOpen(image) || task >= image->task_count) return 0;
  return ReadTask(image->data, image->task_table, task).arena_size;
}

uint32_t yono_image_model_crc32(const yono_image* image, uint32_t task) {
  if (!IsOpen(image) || task >= image->task_count) return 0;
  return ReadTask(image->data, image->task_table, task).model_crc32;
}

int32_t yono_image_find_task(const yono_image* image, const char* name) {
  if (!IsOpen(image) || name == nullptr) return -1;
  for (uint32_t i = 0; i < image->task_count; ++i) {
    const Task t = ReadTask(image->data, image->task_table, i);
    const char* n = reinterpret_cast<const char*>(image->data + t.name_offset);
    uint32_t j = 0;
    while (j < t.name_length && name[j] != '\0' && name[j] == n[j]) ++j;
    if (j == t.name_length && name[j] == '\0') return static_cast<int32_t>(i);
  }
  return -1;
}

yono_status yono_image_rebuild(const yono_image* image, uint32_t task,
                               uint8_t* dst, uint32_t dst_size,
                               uint32_t* written) {
#if YONO_STACK_CACHE_BYTES > 0
  int8_t cache[YONO_STACK_CACHE_BYTES];
  return RebuildImpl(image, task, dst, dst_size, written, cache,
                     YONO_STACK_CACHE_BYTES);
#else
  return RebuildImpl(image, task, dst, dst_size, written, nullptr, 0);
#endif
}

int yono_testing_simd_available(void) {
#if YONO_SIMD_X86
  return SimdAvailable() ? 1 : 0;
#else
  return 0;
#endif
}

int yono_testing_decode_pq(const uint8_t* idx, const int8_t* const* cw,
                           uint32_t m, uint32_t s, uint32_t a, uint32_t b,
                           uint8_t* out, int use_simd) {
  Pq pq{};
  pq.idx = idx;
  pq.s = s;
  pq.m = m;
  for (uint32_t i = 0; i < m; ++i) pq.cw[i] = cw[i];
  pq.k256 = true;
  pq.planes = nullptr;
#if YONO_SIMD_X86
  alignas(64) uint8_t planes[kPlaneBytes];
  if (use_simd != 0) pq.planes = PrepareSimd(pq, b, planes);
#else
  (void)use_simd;
#endif
  if (a < b) DecodeRange(pq, a, b, out);
  return pq.planes != nullptr ? 1 : 0;
}

yono_status yono_image_rebuild_ws(const yono_image* image, uint32_t task,
                                  uint8_t* dst, uint32_t dst_size,
                                  uint32_t* written, uint8_t* workspace,
                                  uint32_t workspace_size) {
  return RebuildImpl(image, task, dst, dst_size, written,
                     reinterpret_cast<int8_t*>(workspace), workspace_size);
}

}  // extern "C"
