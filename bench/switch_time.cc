// Task-switch cost: time to rebuild each task of an image vs a plain memcpy
// of the same number of bytes, measured in the same run. On the Cortex-M7
// also the decode-record path of flash tasks (YONO_DECODE's Prepare check
// and Eval decode) per decoded byte, every PQ record of the image taken as
// a decode record.
//
// Host:   yono_switch_time IMAGE [IMAGE...]   (wall clock, best of N runs)
// Cortex-M7 under QEMU (YONO_BENCH_MCU): the embedded test image, timed with
//   the CMSDK APB timer0 (25 MHz). Run QEMU with `-icount shift=0` so one
//   guest instruction advances virtual time by 1 ns: instructions = ticks*40.
#include <stdio.h>
#include <string.h>

#include "yono/image.h"

#if defined(YONO_BENCH_MCU)

extern "C" {
extern const int yono_test_skip;
extern const uint32_t yono_test_image_size;
extern const uint8_t yono_test_image[];
extern const uint32_t yono_test_region_size;
extern uint8_t yono_test_region[];
}

namespace {
struct CmsdkTimer {
  volatile uint32_t ctrl, value, reload, intstatus;
};
CmsdkTimer* const kTimer0 = reinterpret_cast<CmsdkTimer*>(0x40000000u);
constexpr uint32_t kInsnsPerTick = 40;  // 25 MHz timer, 1 ns per insn (-icount shift=0)
constexpr double kTargetHz = 480e6;     // STM32H7 core clock

void TimerStart() {
  kTimer0->ctrl = 0;
  kTimer0->reload = 0xFFFFFFFFu;
  kTimer0->value = 0xFFFFFFFFu;
  kTimer0->ctrl = 1;
}
inline uint32_t TimerNow() { return ~kTimer0->value; }  // counts up

uint32_t Le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) |
         (uint32_t{p[3]} << 24);
}

// Flash tasks' decode path: each PQ fill record as a decode record (dst =
// src = 0, indices in place), CheckRecord (YONO_DECODE Prepare) and
// DecodeRecord (Eval) into the region, with the stack workspace and with the
// attached codeword cache. Per task: instructions per decoded byte.
void DecodeRecords(const yono::Image& image, const yono::Image& cached, bool have_cache) {
  const uint8_t* d = image.data();
  const uint32_t tasks = Le32(d + YONO_HEADER_TASK_TABLE_OFFSET_OFF);
  printf("decode records (flash tasks' YONO_DECODE):\n");
  printf("%-40s %5s %9s %10s %10s %10s\n", "task", "recs", "bytes", "check_i/B", "decode_i/B",
         "cached_i/B");
  double all_ck = 0, all_dec = 0, all_cc = 0, all_bytes = 0;
  for (uint32_t t = 0; t < image.task_count(); ++t) {
    const uint8_t* e = d + tasks + YONO_TASK_ENTRY_SIZE * t;
    const uint32_t table = Le32(e + YONO_TASK_FILL_TABLE_OFFSET_OFF);
    const uint32_t count = Le32(e + YONO_TASK_FILL_COUNT_OFF);
    double ck = 0, dec = 0, cc = 0, bytes = 0;
    uint32_t recs = 0;
    for (uint32_t r = 0; r < count; ++r) {
      const uint8_t* f = d + table + YONO_FILL_RECORD_SIZE * r;
      const uint8_t kind = f[YONO_FILL_KIND_OFF];
      if (kind != YONO_FILL_KIND_PQ && kind != YONO_FILL_KIND_PQ_RESIDUAL) continue;
      uint8_t rec[YONO_FILL_RECORD_SIZE];
      memcpy(rec, f, sizeof rec);
      memset(rec + YONO_FILL_DST_OFFSET_OFF, 0, 4);
      memset(rec + YONO_FILL_SRC_OFFSET_OFF, 0, 4);
      const uint8_t* idx = d + Le32(f + YONO_FILL_SRC_OFFSET_OFF);
      const uint32_t len = Le32(f + YONO_FILL_LENGTH_OFF);
      // Index bytes: the image's own span (n + n2), found by the check itself.
      const uint8_t* cb = d + Le32(d + YONO_HEADER_CODEBOOK_TABLE_OFFSET_OFF);
      const uint32_t first = f[YONO_FILL_CODEBOOK_FIRST_OFF] | (f[YONO_FILL_CODEBOOK_FIRST_OFF + 1] << 8);
      const uint32_t s1 = cb[YONO_CODEBOOK_ENTRY_SIZE * first + YONO_CODEBOOK_SUBVECTOR_LEN_OFF];
      uint32_t n = (len + s1 - 1) / s1;
      if (kind == YONO_FILL_KIND_PQ_RESIDUAL) {
        const uint32_t rf = f[YONO_FILL_RESIDUAL_FIRST_OFF] | (f[YONO_FILL_RESIDUAL_FIRST_OFF + 1] << 8);
        const uint32_t s2 = cb[YONO_CODEBOOK_ENTRY_SIZE * rf + YONO_CODEBOOK_SUBVECTOR_LEN_OFF];
        n += (len + s2 - 1) / s2;
      }
      int8_t* out = reinterpret_cast<int8_t*>(yono_test_region);
      uint32_t t0 = TimerNow();
      const yono::Status cs = image.CheckRecord(rec, idx, n, nullptr);
      ck += (double)(TimerNow() - t0) * kInsnsPerTick;
      t0 = TimerNow();
      const yono::Status ds = image.DecodeRecord(rec, idx, out, yono_test_region_size);
      dec += (double)(TimerNow() - t0) * kInsnsPerTick;
      t0 = TimerNow();
      (void)(have_cache ? cached : image).DecodeRecord(rec, idx, out, yono_test_region_size);
      cc += (double)(TimerNow() - t0) * kInsnsPerTick;
      if (cs != yono::Status::kOk || ds != yono::Status::kOk) {
        printf("FAIL: decode record %lu of %s: %s / %s\n", (unsigned long)r, image.task_name(t),
               yono::StatusString(cs), yono::StatusString(ds));
        return;
      }
      bytes += len;
      ++recs;
    }
    if (recs == 0) continue;
    printf("%-40s %5lu %9.0f %10.3f %10.3f %10.3f\n", image.task_name(t), (unsigned long)recs,
           bytes, ck / bytes, dec / bytes, cc / bytes);
    all_ck += ck;
    all_dec += dec;
    all_cc += cc;
    all_bytes += bytes;
  }
  if (all_bytes > 0)
    printf("TOTAL decode records %.0f bytes: check %.3f insn/byte, decode %.3f insn/byte, "
           "cached %.3f insn/byte\n", all_bytes, all_ck / all_bytes, all_dec / all_bytes,
           all_cc / all_bytes);
}
}  // namespace

int main() {
  if (yono_test_skip) {
    printf("YONO_SKIP: no test image\n");
    return 0;
  }
  yono::Image image;
  TimerStart();
  uint32_t t0 = TimerNow();
  const yono::Status st = image.Open(yono_test_image, yono_test_image_size);
  const uint32_t open_ticks = TimerNow() - t0;
  if (st != yono::Status::kOk) {
    printf("FAIL: Open: %s\n", yono::StatusString(st));
    return 1;
  }
  printf("Open (CRC + full validation) of %lu bytes: %lu insns (%.2f insn/byte)\n",
         (unsigned long)image.size(), (unsigned long)(open_ticks * kInsnsPerTick),
         (double)open_ticks * kInsnsPerTick / image.size());
  // Second handle with the attached int8 codeword cache (what a firmware with
  // the RAM to spare does: 8 KiB for the default rates, 20 KiB with 1 bpw ones): no
  // codebook conversion per Rebuild().
  static uint8_t cw_cache[32768];
  yono::Image cached;
  (void)cached.Open(yono_test_image, yono_test_image_size);
  const bool have_cache =
      cached.AttachCodewordCache(cw_cache, sizeof cw_cache) == yono::Status::kOk;
  printf("codeword cache: %lu bytes%s\n", (unsigned long)cached.codeword_cache_size(),
         have_cache ? "" : " (does not fit: cached columns repeat the stack-cache path)");
  printf("%-40s %8s %12s %12s %9s %9s %6s %9s %9s %9s\n", "task", "bytes", "rebuild_ins",
         "memcpy_ins", "rb_ins/B", "mc_ins/B", "ratio", "ms@480MHz", "cch_ins/B", "cch_ms");
  unsigned long long total_rb = 0, total_mc = 0, total_bytes = 0;
  for (uint32_t t = 0; t < image.task_count(); ++t) {
    const uint32_t n = image.model_size(t);
    t0 = TimerNow();
    const yono::Status rs = image.Rebuild(t, yono_test_region, yono_test_region_size, nullptr);
    const uint32_t rb = TimerNow() - t0;
    if (rs != yono::Status::kOk) {
      printf("FAIL: Rebuild: %s\n", yono::StatusString(rs));
      return 1;
    }
    // memcpy of the same number of bytes from "flash" (the image) to SRAM.
    const uint32_t src_n = n < image.size() ? n : image.size();
    t0 = TimerNow();
    memcpy(yono_test_region, yono_test_image, src_n);
    if (src_n < n) memcpy(yono_test_region + src_n, yono_test_image, n - src_n);
    const uint32_t mc = TimerNow() - t0;
    t0 = TimerNow();
    (void)(have_cache ? cached : image).Rebuild(t, yono_test_region, yono_test_region_size, nullptr);
    const double cc_i = (double)(TimerNow() - t0) * kInsnsPerTick;
    const double rb_i = (double)rb * kInsnsPerTick, mc_i = (double)mc * kInsnsPerTick;
    printf("%-40s %8lu %12.0f %12.0f %9.3f %9.3f %6.2f %9.3f %9.3f %9.3f\n", image.task_name(t),
           (unsigned long)n, rb_i, mc_i, rb_i / n, mc_i / n, mc ? rb_i / mc_i : 0.0,
           rb_i / kTargetHz * 1e3, cc_i / n, cc_i / kTargetHz * 1e3);
    total_rb += rb;
    total_mc += mc;
    total_bytes += n;
  }
  printf("TOTAL %llu bytes: rebuild %.3f insn/byte, memcpy %.3f insn/byte, ratio %.2f\n",
         total_bytes, (double)total_rb * kInsnsPerTick / total_bytes,
         (double)total_mc * kInsnsPerTick / total_bytes, (double)total_rb / total_mc);
  printf("Estimate on a 480 MHz STM32H7 assumes ~1 instruction/cycle and no flash/cache "
         "stalls (real M7 dual-issue may be faster; flash wait states slower).\n");
  DecodeRecords(image, cached, have_cache);
  printf("DONE\n");
  return 0;
}

#else  // host

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

namespace {
using Clock = std::chrono::steady_clock;

std::vector<uint8_t> ReadFile(const char* path) {
  std::vector<uint8_t> d;
  FILE* f = fopen(path, "rb");
  if (!f) return d;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) d.insert(d.end(), buf, buf + n);
  fclose(f);
  return d;
}

template <typename F>
double BestSeconds(F&& f, int reps) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, s);
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s IMAGE [IMAGE...]\n", argv[0]);
    return 2;
  }
  int rc = 0;
  for (int a = 1; a < argc; ++a) {
    std::vector<uint8_t> img = ReadFile(argv[a]);
    yono::Image image;
    const yono::Status st = image.Open(img.data(), static_cast<uint32_t>(img.size()));
    if (st != yono::Status::kOk) {
      printf("%s: %s\n", argv[a], yono::StatusString(st));
      rc = 1;
      continue;
    }
    const double open_s = BestSeconds([&] { yono::Image i2; (void)i2.Open(img.data(), static_cast<uint32_t>(img.size())); }, 5);
    printf("%s: %u bytes, %u tasks; Open (CRC + validation) %.1f us (%.2f GB/s)\n", argv[a],
           image.size(), image.task_count(), open_s * 1e6, image.size() / open_s / 1e9);
    yono::Image cached;
    (void)cached.Open(img.data(), static_cast<uint32_t>(img.size()));
    std::vector<uint8_t> cw(cached.codeword_cache_size());
    (void)cached.AttachCodewordCache(cw.data(), static_cast<uint32_t>(cw.size()));
    printf("  codeword cache %zu bytes\n", cw.size());
    printf("  %-44s %8s %10s %10s %6s %10s %10s\n", "task", "bytes", "rebuild_us", "memcpy_us",
           "ratio", "stack_us", "nocache_us");
    void* p = nullptr;
    if (posix_memalign(&p, 64, image.max_model_size() + 64) != 0) return 1;
    uint8_t* region = static_cast<uint8_t*>(p);
    // memcpy source: a buffer of max_model_size bytes distinct from region.
    std::vector<uint8_t> src(image.max_model_size() + 64);
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 131u);
    double tot_rb = 0, tot_mc = 0;
    for (uint32_t t = 0; t < image.task_count(); ++t) {
      const uint32_t n = image.model_size(t);
      const int reps = n > (1u << 18) ? 50 : 200;
      const double rb = BestSeconds([&] { (void)cached.Rebuild(t, region, n, nullptr); }, reps);
      const double sc = BestSeconds([&] { (void)image.Rebuild(t, region, n, nullptr); }, reps);
      const double mc = BestSeconds([&] {
        memcpy(region, src.data(), n);
        __asm__ volatile("" ::"r"(region) : "memory");
      }, reps);
      const double nc = BestSeconds([&] { (void)image.Rebuild(t, region, n, nullptr, nullptr, 0); }, 5);
      printf("  %-44s %8u %10.2f %10.2f %6.2f %10.2f %10.2f\n", image.task_name(t), n, rb * 1e6,
             mc * 1e6, rb / mc, sc * 1e6, nc * 1e6);
      tot_rb += rb;
      tot_mc += mc;
    }
    printf("  TOTAL rebuild %.1f us, memcpy %.1f us, ratio %.2f\n", tot_rb * 1e6, tot_mc * 1e6,
           tot_rb / tot_mc);
    free(region);
  }
  return rc;
}
#endif
