// yono_unit_test: image-independent checks (CRC-32, binary16 -> int8, host
// SIMD PQ decode vs the portable decode).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "yono/image.h"
#include "yono/image_testing.h"

namespace {
int g_failures = 0;

// Reference binary16 -> float (exact), independent of the runtime's code.
double HalfToDouble(uint16_t h) {
  const int sign = (h & 0x8000) ? -1 : 1;
  const int e = (h >> 10) & 0x1F;
  const int f = h & 0x3FF;
  if (e == 0) return sign * std::ldexp(f, -24);
  if (e == 31) return f ? std::nan("") : sign * INFINITY;
  return sign * std::ldexp(1024 + f, e - 25);
}
int RefInt8(uint16_t h) {
  const double v = HalfToDouble(h);
  if (std::isnan(v)) return 0;
  double r = v < 0 ? -std::floor(-v + 0.5) : std::floor(v + 0.5);
  if (r < -128) r = -128;
  if (r > 127) r = 127;
  return static_cast<int>(r);
}

uint32_t g_rng = 12345;
uint32_t Rand() {  // xorshift32: deterministic, any platform
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}

// PQ decode of random records: the SIMD path (where available) must match
// the portable path and a direct reference byte for byte, for s in {2, 4},
// M in {1, 2}, lengths around the 128-index SIMD step (tails 0..127), and
// start offsets that are unaligned and begin on either codebook phase.
void CheckPqDecode() {
  const bool simd = yono_testing_simd_available() != 0;
  std::printf("SIMD decode path: %s\n",
              simd ? "available (checked)" : "not available (skipped)");
  int8_t cw[2][256 * 4];
  uint32_t simd_calls = 0;
  for (uint32_t s : {2u, 4u}) {
    for (uint32_t m : {1u, 2u}) {
      for (uint32_t trial = 0; trial < 400; ++trial) {
        for (auto& c : cw)
          for (auto& v : c) v = static_cast<int8_t>(Rand());
        const int8_t* cws[2] = {cw[0], cw[1]};
        // Indices: mostly whole SIMD steps plus a tail, sometimes tiny.
        const uint32_t n = trial < 300 ? 128u * (Rand() % 12) + Rand() % 128 + 1
                                       : Rand() % 300 + 1;
        std::vector<uint8_t> idx(n);
        for (auto& v : idx) v = static_cast<uint8_t>(Rand());
        if (trial % 7 == 0)  // all-extremes: top bit patterns of the lookup
          for (uint32_t j = 0; j < n; ++j)
            idx[j] = (j % 3 == 0) ? 255 : (j % 3 == 1 ? 0 : 128);
        const uint32_t total = n * s;
        // a: start element (unaligned / odd index phase), b: end (partial tail).
        const uint32_t a = trial % 4 == 0 ? 0u : Rand() % (total / 2 + 1);
        const uint32_t b = total - (trial % 3 == 0 ? Rand() % s : 0u);
        if (a >= b) continue;
        const uint32_t len = b - a;
        std::vector<uint8_t> want(len), got_scalar(len + 64, 0xA5),
            got_simd(len + 64, 0xA5);
        for (uint32_t e = a; e < b; ++e) {
          const uint32_t j = e / s;
          want[e - a] = static_cast<uint8_t>(cw[j % m][idx[j] * s + e % s]);
        }
        (void)yono_testing_decode_pq(idx.data(), cws, m, s, a, b,
                                     got_scalar.data(), 0);
        const int used = yono_testing_decode_pq(idx.data(), cws, m, s, a, b,
                                                got_simd.data(), 1);
        simd_calls += static_cast<uint32_t>(used);
        if (used != 0 && !simd) ++g_failures;
        bool guard_ok = true;
        for (uint32_t t = len; t < len + 64; ++t)
          guard_ok = guard_ok && got_scalar[t] == 0xA5 && got_simd[t] == 0xA5;
        if (std::memcmp(want.data(), got_scalar.data(), len) != 0 ||
            std::memcmp(want.data(), got_simd.data(), len) != 0 || !guard_ok) {
          std::fprintf(stderr,
                       "FAIL: pq decode s=%u m=%u n=%u [%u, %u) simd=%d\n", s,
                       m, n, a, b, used);
          if (++g_failures > 20) return;
        }
      }
    }
  }
  if (simd && simd_calls == 0) {
    std::fprintf(stderr, "FAIL: SIMD available but never used\n");
    ++g_failures;
  }
}
}  // namespace

int main() {
  // CRC-32 check value and incremental use.
  const char* s = "123456789";
  const uint8_t* p = reinterpret_cast<const uint8_t*>(s);
  if (yono::Crc32(p, 9) != 0xCBF43926u) {
    std::fprintf(stderr, "FAIL: crc check value\n");
    ++g_failures;
  }
  for (uint32_t cut = 0; cut <= 9; ++cut) {
    if (yono::Crc32(p + cut, 9 - cut, yono::Crc32(p, cut)) != 0xCBF43926u) {
      std::fprintf(stderr, "FAIL: incremental crc at %u\n", cut);
      ++g_failures;
    }
  }
  if (yono::Crc32(nullptr, 0) != 0 || yono::Crc32(p, 0) != 0) {
    std::fprintf(stderr, "FAIL: empty crc\n");
    ++g_failures;
  }

  // Every binary16 bit pattern.
  for (uint32_t h = 0; h < 65536; ++h) {
    const int got = yono_half_to_int8(static_cast<uint16_t>(h));
    const int want = RefInt8(static_cast<uint16_t>(h));
    if (got != want) {
      std::fprintf(stderr, "FAIL: half %04x (%g): got %d want %d\n", h,
                   HalfToDouble(static_cast<uint16_t>(h)), got, want);
      if (++g_failures > 20) break;
    }
  }
  // Spot checks of the rounding rule.
  struct {
    uint16_t h;
    int want;
  } spots[] = {{0x4100, 3} /*2.5*/,     {0xC100, -3} /*-2.5*/,
               {0x3800, 1} /*0.5*/,     {0xB800, -1},
               {0x37FF, 0} /*<0.5*/,    {0x7C00, 127},
               {0xFC00, -128},          {0x7E00, 0} /*NaN*/,
               {0x5A00, 127} /*192*/,   {0xD800, -128} /*-128*/,
               {0xD808, -128} /*-129*/, {0x57F0, 127}};
  for (const auto& sp : spots) {
    if (yono_half_to_int8(sp.h) != sp.want) {
      std::fprintf(stderr, "FAIL: spot %04x -> %d want %d\n", sp.h,
                   yono_half_to_int8(sp.h), sp.want);
      ++g_failures;
    }
  }
  for (int st = 0; st <= 16; ++st) {
    if (std::strlen(yono::StatusString(static_cast<yono::Status>(st))) == 0)
      ++g_failures;
  }
  CheckPqDecode();
  std::printf(g_failures == 0 ? "PASS\n" : "FAIL (%d)\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
