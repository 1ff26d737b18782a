// Portable PQ decode: int8 codewords (from a cache) or binary16 ones (slow
// path) into a linear or kernel-major record. The x86 SIMD path lives in
// image_decode_x86.cc; CopyFullCached() dispatches to it.
#include <stdint.h>
#include <string.h>

#include "image_internal.h"
#include "yono/image.h"

namespace yono {
namespace internal {
namespace {

constexpr uint32_t kTransposeBytes = 1024;  // stack buffer for layout 1

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

}  // namespace

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

// Layout 1: vector order walks [O, I, P], memory is [O, P, I]. Decodes
// channel groups into a stack buffer and scatters them.
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

}  // namespace internal
}  // namespace yono

extern "C" {

int8_t yono_half_to_int8(uint16_t h) { return yono::internal::HalfToInt8(h); }

}  // extern "C"
