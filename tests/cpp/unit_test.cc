// yono_unit_test: image-independent checks (CRC-32, binary16 -> int8).
#include <cmath>
#include <cstdio>
#include <cstring>

#include "yono/image.h"

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
}  // namespace

int main() {
  // CRC-32 check value and incremental use.
  const char* s = "123456789";
  const uint8_t* p = reinterpret_cast<const uint8_t*>(s);
  if (yono::Crc32(p, 9) != 0xCBF43926u) { std::fprintf(stderr, "FAIL: crc check value\n"); ++g_failures; }
  for (uint32_t cut = 0; cut <= 9; ++cut) {
    if (yono::Crc32(p + cut, 9 - cut, yono::Crc32(p, cut)) != 0xCBF43926u) {
      std::fprintf(stderr, "FAIL: incremental crc at %u\n", cut);
      ++g_failures;
    }
  }
  if (yono::Crc32(nullptr, 0) != 0 || yono::Crc32(p, 0) != 0) { std::fprintf(stderr, "FAIL: empty crc\n"); ++g_failures; }

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
  struct { uint16_t h; int want; } spots[] = {
      {0x4100, 3} /*2.5*/, {0xC100, -3} /*-2.5*/, {0x3800, 1} /*0.5*/, {0xB800, -1},
      {0x37FF, 0} /*<0.5*/, {0x7C00, 127}, {0xFC00, -128}, {0x7E00, 0} /*NaN*/,
      {0x5A00, 127} /*192*/, {0xD800, -128} /*-128*/, {0xD808, -128} /*-129*/, {0x57F0, 127}};
  for (const auto& sp : spots) {
    if (yono_half_to_int8(sp.h) != sp.want) {
      std::fprintf(stderr, "FAIL: spot %04x -> %d want %d\n", sp.h, yono_half_to_int8(sp.h), sp.want);
      ++g_failures;
    }
  }
  for (int st = 0; st <= 16; ++st) {
    if (std::strlen(yono::StatusString(static_cast<yono::Status>(st))) == 0) ++g_failures;
  }
  std::printf(g_failures == 0 ? "PASS\n" : "FAIL (%d)\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
