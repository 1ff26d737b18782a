// Portable PQ decode of one record: both stages of PQ_RESIDUAL, linear and
// kernel-major layouts, int8 codewords from an attached cache, a per-call
// workspace or binary16 directly (slow path); the test hooks. The x86 SIMD
// path lives in image_decode_x86.cc; CopyFullCached() dispatches to it.
// Rebuild() and decode records (image_rebuild.cc) call DecodePqRecord()
// once per record.
//
// DecodeRange()/DecodeKernelMajor() stay out of line on purpose: inlined
// into the record loop, the host stack-workspace rebuild of the examples
// image was 15-20% slower (bench/switch_time.cc, stack_us).
#include <stdint.h>
#include <string.h>
#if defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
#endif

#include "image_internal.h"
#include "yono/image.h"
#include "yono/image_format.h"
#include "yono/image_testing.h"

namespace yono {
namespace internal {
namespace {

constexpr uint32_t kTransposeBytes = 1024;  // stack buffer for layout 1
constexpr uint32_t kResidualChunk = 256;    // stack buffer for PQ_RESIDUAL

// One codeword as int8 into out[0, n) starting at value `from`.
inline void CodewordSlow(const Pq& pq, uint32_t m, uint32_t k, uint32_t from,
                         uint32_t n, uint8_t* out) {
  const uint8_t* h = pq.half[m] + 2u * (k * pq.s + from);
  for (uint32_t t = 0; t < n; ++t)
    out[t] = static_cast<uint8_t>(HalfToInt8(Rd16(h + 2u * t)));
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

// Sub-vectors [0, count) starting at sub-codebook m0, from the int8 cache.
void CopyFullCached(uint8_t* out, const uint8_t* idx, uint32_t count,
                    const Pq& pq, uint32_t m0) {
#if YONO_SIMD_X86
  if (pq.planes != nullptr && count >= kSimdStep) {
    const uint32_t n = count - count % kSimdStep;  // even: the phase is kept
    DecodeSimd(pq, out, idx, n, m0);
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

// Vector-order elements [a, b) of a PQ record into out[0, b-a). Out of line
// on purpose (see the top of this file).
YONO_NOINLINE void DecodeRange(const Pq& pq, uint32_t a, uint32_t b,
                               uint8_t* out) {
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

// out[t] = saturate_int8(out[t] + r[t]): the residual stage's sum.
inline void SaturatingAdd(uint8_t* out, const uint8_t* r, uint32_t n) {
  uint32_t t = 0;
#if defined(__ARM_FEATURE_SIMD32)
  for (; t + 4 <= n; t += 4) {  // QADD8: four saturating int8 adds
    int8x4_t a, b;
    memcpy(&a, out + t, 4);
    memcpy(&b, r + t, 4);
    a = __qadd8(a, b);
    memcpy(out + t, &a, 4);
  }
#endif
  for (; t < n; ++t) {  // hosts: compilers vectorise this (x86: PADDSB)
    int32_t v = static_cast<int8_t>(out[t]) + static_cast<int8_t>(r[t]);
    v = v < -128 ? -128 : (v > 127 ? 127 : v);
    out[t] = static_cast<uint8_t>(v);
  }
}

// Vector-order elements [a, b) of a record with an optional residual stage
// (res: PQ_RESIDUAL) into out[0, b-a).
YONO_NOINLINE void DecodeStages(const Pq& pq, const Pq* res, uint32_t a,
                                uint32_t b, uint8_t* out) {
  DecodeRange(pq, a, b, out);
  if (res == nullptr) return;
  uint8_t tmp[kResidualChunk];
  for (uint32_t e = a; e < b; e += kResidualChunk) {
    const uint32_t n = (b - e < kResidualChunk) ? b - e : kResidualChunk;
    DecodeRange(*res, e, e + n, tmp);
    SaturatingAdd(out + (e - a), tmp, n);
  }
}

// Layout 1: vector order walks [O, I, P], memory is [O, P, I]. Decodes
// channel groups into a stack buffer and scatters them.
YONO_NOINLINE void DecodeKernelMajor(const Pq& pq, const Pq* res,
                                     uint32_t length, uint32_t p_count,
                                     uint32_t i_count, uint8_t* out) {
  uint8_t tmp[kTransposeBytes];
  const uint32_t pi = p_count * i_count;
  const uint32_t o_count = length / pi;
  if (p_count <= kTransposeBytes) {
    // Decode C channels (C*P contiguous vector-order values) at a time, then
    // write each kernel position's C bytes contiguously.
    const uint32_t c_max = i_count < kTransposeBytes / p_count
                               ? i_count
                               : kTransposeBytes / p_count;
    for (uint32_t o = 0; o < o_count; ++o) {
      uint8_t* out_o = out + o * pi;
      for (uint32_t i0 = 0; i0 < i_count; i0 += c_max) {
        const uint32_t c = (i_count - i0 < c_max) ? i_count - i0 : c_max;
        const uint32_t e0 = o * pi + i0 * p_count;
        DecodeStages(pq, res, e0, e0 + c * p_count, tmp);
        if (p_count == 9) {
          for (uint32_t p = 0; p < 9; ++p) {
            uint8_t* d = out_o + p * i_count + i0;
            const uint8_t* t = tmp + p;
            uint32_t ci = 0;
            for (; ci + 4 <= c; ci += 4) {
              const uint32_t w = uint32_t{t[ci * 9]} |
                                 (uint32_t{t[ci * 9 + 9]} << 8) |
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
    DecodeStages(pq, res, e, e + n, tmp);
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

const int8_t* CacheLookup(Cache* cache, uint32_t codebook) {
  for (uint32_t i = 0; i < cache->slots; ++i)
    if (cache->slot_codebook[i] == codebook)
      return cache->buf + cache->slot_offset[i];
  return nullptr;
}

// Int8 bytes of the M codebooks from `first`.
uint32_t CodewordBytes(const yono_image& im, uint32_t first, uint32_t m_count) {
  uint32_t need = 0;
  for (uint32_t m = 0; m < m_count; ++m) {
    const Codebook cb = ReadCodebook(im.data, im.codebook_table, first + m);
    need += cb.k * cb.s;
  }
  return need;
}

// Set up pq for one stage of a record: M codebooks from `first`, indices at
// `idx`. may_reset = false: never drop cached codebooks (another stage of
// the same record points into them); take the slow path instead.
void PreparePq(const yono_image& im, uint32_t first, uint32_t m_count,
               const uint8_t* idx, Cache* cache, bool may_reset, Pq* pq) {
  const uint8_t* img = im.data;
  pq->idx = idx;
  pq->m = m_count;
  pq->s = ReadCodebook(img, im.codebook_table, first).s;
  for (uint32_t m = 0; m < kMaxSubCodebooks; ++m) {
    pq->cw[m] = nullptr;
    pq->half[m] = nullptr;
  }
  pq->k256 = true;
  pq->planes = nullptr;
  uint32_t need = 0;
  for (uint32_t m = 0; m < m_count; ++m) {
    const Codebook cb = ReadCodebook(img, im.codebook_table, first + m);
    pq->half[m] = img + cb.data_offset;
    pq->k256 = pq->k256 && cb.k == YONO_MAX_CODEWORDS;
    need += cb.k * cb.s;
  }
  if (im.cw_cache != nullptr) {
    for (uint32_t m = 0; m < m_count; ++m)
      pq->cw[m] = im.cw_cache + (first + m) * im.cw_stride;
    return;
  }
  if (need > cache->capacity) return;  // slow path: convert per codeword
  for (int pass = 0; pass < (may_reset ? 2 : 1); ++pass) {
    bool ok = true;
    for (uint32_t m = 0; m < m_count && ok; ++m) {
      const uint32_t c = first + m;
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
    if (!may_reset) break;
    // Full: start over (the record alone fits: need <= capacity).
    cache->slots = 0;
    cache->used = 0;
  }
  // Not cached (only when !may_reset): the slow path for every sub-codebook.
  for (uint32_t m = 0; m < kMaxSubCodebooks; ++m) pq->cw[m] = nullptr;
}

}  // namespace

void ConvertCodebook(const uint8_t* half, uint32_t n, int8_t* dst) {
  for (uint32_t t = 0; t < n; ++t) dst[t] = HalfToInt8(Rd16(half + 2u * t));
}

void DecodePqRecord(const yono_image& im, const Fill& f, const uint8_t* idx,
                    Cache* cache, uint8_t* out) {
#if YONO_SIMD_X86
  alignas(64) uint8_t planes[kPlaneBytes];
  alignas(64) uint8_t planes_res[kPlaneBytes];  // PQ_RESIDUAL's second stage
#endif
  Pq pq;
  Pq res_pq;
  const Pq* res = nullptr;
  if (f.kind == YONO_FILL_KIND_PQ_RESIDUAL) {
    // Room for both stages' codebooks, so the second cannot evict the
    // first (it would take the slow path instead).
    const uint32_t need = CodewordBytes(im, f.codebook_first, f.m) +
                          CodewordBytes(im, f.residual_first, f.m2);
    if (cache->used + need > cache->capacity ||
        cache->slots + f.m + f.m2 > kCacheSlots) {
      cache->slots = 0;
      cache->used = 0;
    }
  }
  PreparePq(im, f.codebook_first, f.m, idx, cache, true, &pq);
#if YONO_SIMD_X86
  pq.planes = PrepareSimd(pq, f.length, planes);
#endif
  if (f.kind == YONO_FILL_KIND_PQ_RESIDUAL) {
    const uint32_t n = StageIndexBytes(f.length, pq.s);
    PreparePq(im, f.residual_first, f.m2, idx + n, cache, false, &res_pq);
#if YONO_SIMD_X86
    res_pq.planes = PrepareSimd(res_pq, f.length, planes_res);
#endif
    res = &res_pq;
  }
  if (f.layout == YONO_LAYOUT_KERNEL_MAJOR) {
    DecodeKernelMajor(pq, res, f.length, f.positions, f.inner, out);
  } else {
    DecodeStages(pq, res, 0, f.length, out);
  }
}

}  // namespace internal
}  // namespace yono

using namespace yono::internal;

extern "C" {

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

}  // extern "C"
