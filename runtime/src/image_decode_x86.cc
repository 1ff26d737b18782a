// Host-only PQ decode with AVX-512 VBMI byte permutes (TFLM's per-platform
// file pattern): compiled for x86-64 hosts, chosen at run time when the CPU
// has AVX-512 F/BW/VBMI, off with -DYONO_NO_SIMD. The MCU build never sees it.
#include "image_internal.h"

#if YONO_SIMD_X86
// GCC 12 flags the intrinsics' own _mm512_undefined_*() as maybe-uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif

namespace yono {
namespace internal {
namespace {

// Records with s in {2, 4}, M <= 2 and K = 256 (what yonoc writes) decode 128
// sub-vectors per step with AVX-512 VBMI byte permutes instead of scalar
// table loads. Each codebook is split into s byte planes of 256 entries
// (plane p, entry k = byte p of codeword k); a 256-entry byte lookup is two
// 128-byte vpermt2b lookups blended on the index's top bit. M = 2 alternates
// codebooks per index: even and odd indices are split apart, looked up in
// their own planes, and the unpacks that rebuild the codewords also merge
// them back; the split order is chosen so the in-lane unpacks land in place.
#define YONO_TARGET_VBMI __attribute__((target("avx512f,avx512bw,avx512vbmi")))

struct SimdConsts {
  uint8_t split2[2][64];  // s=2 codebook -> planes: byte 2k+p
  uint8_t split4[64];     // s=4: 128-bit lane p of the result = bytes 4k+p
  uint8_t even4[2][64];   // s=4: even / odd indices of 128, in unpack order
  uint8_t even2[2][64];   // same for s=2
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

// Planes of one K = 256 codebook: planes[p * 256 + k] = cw[k * s + p].
YONO_TARGET_VBMI void BuildPlanes(const int8_t* cw, uint32_t s,
                                  uint8_t* planes) {
  if (s == 2) {
    const __m512i e = _mm512_loadu_si512(kSimd.split2[0]);
    const __m512i o = _mm512_loadu_si512(kSimd.split2[1]);
    for (uint32_t q = 0; q < 4; ++q) {
      const __m512i a = _mm512_loadu_si512(cw + 128u * q);
      const __m512i b = _mm512_loadu_si512(cw + 128u * q + 64u);
      _mm512_storeu_si512(planes + 64u * q, _mm512_permutex2var_epi8(a, e, b));
      _mm512_storeu_si512(planes + 256u + 64u * q,
                          _mm512_permutex2var_epi8(a, o, b));
    }
    return;
  }
  const __m512i split = _mm512_loadu_si512(kSimd.split4);
  // 64 codewords per step: a 4x4 transpose of 128-bit lanes.
  for (uint32_t q = 0; q < 4; ++q) {
    const int8_t* c = cw + 256u * q;
    const __m512i d0 = _mm512_permutexvar_epi8(split, _mm512_loadu_si512(c));
    const __m512i d1 =
        _mm512_permutexvar_epi8(split, _mm512_loadu_si512(c + 64));
    const __m512i d2 =
        _mm512_permutexvar_epi8(split, _mm512_loadu_si512(c + 128));
    const __m512i d3 =
        _mm512_permutexvar_epi8(split, _mm512_loadu_si512(c + 192));
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
YONO_TARGET_VBMI inline __m512i Lookup256(const __m512i* t, __m512i x,
                                          __mmask64 hi) {
  const __m512i lo = _mm512_permutex2var_epi8(t[0], x, t[1]);
  const __m512i up = _mm512_permutex2var_epi8(t[2], x, t[3]);
  return _mm512_mask_blend_epi8(hi, lo, up);
}

// The S planes of one codebook (BuildPlanes layout) into registers.
template <uint32_t S>
YONO_TARGET_VBMI inline void LoadPlanes(const uint8_t* planes,
                                        __m512i (*t)[4]) {
  for (uint32_t p = 0; p < S; ++p)
    for (uint32_t h = 0; h < 4; ++h)
      t[p][h] = _mm512_load_si512(planes + 256u * p + 64u * h);
}

// count (a multiple of 128) sub-vectors of s = 2; index j uses planes pe for
// even j, po for odd j. Even and odd indices are split first so each lookup
// serves one codebook.
YONO_TARGET_VBMI void DecodeSimd2(uint8_t* out, const uint8_t* idx,
                                  uint32_t count, const uint8_t* pe,
                                  const uint8_t* po) {
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
    const __m512i ue[2] = {_mm512_unpacklo_epi8(e0, e1),
                           _mm512_unpackhi_epi8(e0, e1)};
    const __m512i uo[2] = {_mm512_unpacklo_epi8(o0, o1),
                           _mm512_unpackhi_epi8(o0, o1)};
    uint8_t* d = out + 2u * j;
    for (uint32_t g = 0; g < 2; ++g) {
      _mm512_storeu_si512(d + 128u * g, _mm512_unpacklo_epi16(ue[g], uo[g]));
      _mm512_storeu_si512(d + 128u * g + 64u,
                          _mm512_unpackhi_epi16(ue[g], uo[g]));
    }
  }
}

// One codebook's four planes of s = 4, looked up for 64 indices and
// interleaved into 16-byte groups: w[g] lane L dword i <- position 16L+4g+i.
YONO_TARGET_VBMI inline void Lookup4(const __m512i (*t)[4], __m512i x,
                                     __m512i* w) {
  const __mmask64 hi = _mm512_movepi8_mask(x);
  __m512i p[4];
  for (uint32_t q = 0; q < 4; ++q) p[q] = Lookup256(t[q], x, hi);
  const __m512i u0 = _mm512_unpacklo_epi8(p[0], p[1]),
                u1 = _mm512_unpackhi_epi8(p[0], p[1]);
  const __m512i v0 = _mm512_unpacklo_epi8(p[2], p[3]),
                v1 = _mm512_unpackhi_epi8(p[2], p[3]);
  w[0] = _mm512_unpacklo_epi16(u0, v0);
  w[1] = _mm512_unpackhi_epi16(u0, v0);
  w[2] = _mm512_unpacklo_epi16(u1, v1);
  w[3] = _mm512_unpackhi_epi16(u1, v1);
}

// s = 4, 128 sub-vectors per step: even and odd indices are split first so
// every lookup serves one codebook.
YONO_TARGET_VBMI void DecodeSimd4(uint8_t* out, const uint8_t* idx,
                                  uint32_t count, const uint8_t* pe,
                                  const uint8_t* po) {
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
      _mm512_storeu_si512(d + 128u * g + 64u,
                          _mm512_unpackhi_epi32(we[g], wo[g]));
    }
  }
}

}  // namespace

bool SimdAvailable() {
  static const bool ok = __builtin_cpu_supports("avx512f") &&
                         __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vbmi");
  return ok;
}

const uint8_t* PrepareSimd(const Pq& pq, uint32_t length, uint8_t* planes) {
  // Building the planes costs about as much as decoding a few blocks.
  if (pq.cw[0] == nullptr || !pq.k256 || pq.m > 2 || (pq.s != 2 && pq.s != 4) ||
      length < 2u * kSimdStep * pq.s || !SimdAvailable())
    return nullptr;
  BuildPlanes(pq.cw[0], pq.s, planes);
  if (pq.m == 2) BuildPlanes(pq.cw[1], pq.s, planes + kPlaneBytes / 2);
  return planes;
}

void DecodeSimd(const Pq& pq, uint8_t* out, const uint8_t* idx, uint32_t count,
                uint32_t m0) {
  const uint8_t* p0 = pq.planes;
  const uint8_t* p1 = pq.m == 2 ? pq.planes + kPlaneBytes / 2 : p0;
  const uint8_t* pe = m0 == 0 ? p0 : p1;
  const uint8_t* po = m0 == 0 ? p1 : p0;
  if (pq.s == 2) {
    DecodeSimd2(out, idx, count, pe, po);
  } else {
    DecodeSimd4(out, idx, count, pe, po);
  }
}

}  // namespace internal
}  // namespace yono
#endif  // YONO_SIMD_X86
