// Cortex-M7 (QEMU mps2-an500) test: open the embedded image, rebuild every
// task into a static 16-aligned region, check its CRC-32 against the image's
// model_crc32 and against the host's CRC of `yonoc extract` output, and that
// nothing past model_size was written. Also measures the stack one Rebuild()
// uses (painted stack), without and with an attached codeword cache, and
// checks it against the figures documented in yono/image.h. Prints PASS/FAIL;
// exit code 0/1.
#include <stdio.h>
#include <string.h>

#include "yono/image.h"

extern "C" {
extern const int yono_test_skip;
extern const char yono_test_skip_reason[];
extern const uint32_t yono_test_image_size;
extern const uint8_t yono_test_image[];
extern const uint32_t yono_test_task_count;
extern const uint32_t yono_test_expected_crc[];
extern const uint32_t yono_test_region_size;
extern uint8_t yono_test_region[];
extern uint8_t __stack_limit[];  // mps2_an500.ld
}

namespace {

// yono/image.h's figures for this build (-O3), plus libc memcpy/memset.
constexpr uint32_t kDocumentedStack = 5752;
constexpr uint32_t kDocumentedStackCached = 1632;
constexpr uint32_t kLibcSlack = 64;
constexpr uint8_t kPaint = 0x5C;

inline uint8_t* StackPointer() {
  uint8_t* sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  return sp;
}

// Paints the free stack below this function's frame.
__attribute__((noinline)) void PaintStack() {
  uint8_t* const end = StackPointer() - 64;
  for (volatile uint8_t* p = __stack_limit; p < end; ++p) *p = kPaint;
}

// Bytes below `top` that were written since PaintStack().
uint32_t StackUsed(const uint8_t* top) {
  const uint8_t* p = __stack_limit;
  while (p < top && *p == kPaint) ++p;
  return static_cast<uint32_t>(top - p);
}

// Stack used by one Rebuild() of task t (its result is checked by the caller).
__attribute__((noinline)) uint32_t MeasureRebuild(const yono::Image& image, uint32_t t) {
  uint8_t* const top = StackPointer();
  PaintStack();
  uint32_t written = 0;
  image.Rebuild(t, yono_test_region, yono_test_region_size, &written);
  return StackUsed(top);
}

alignas(16) uint8_t g_cw_cache[64 * 1024];

uint32_t Le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) |
         (uint32_t{p[3]} << 24);
}

// Stack used by the decode-record path (a flash task's YONO_DECODE Eval):
// every PQ record of the image as a decode record (dst = src = 0, indices in
// place), worst over all. Decoded bytes must equal the rebuilt model's.
__attribute__((noinline)) uint32_t MeasureDecodeRecords(const yono::Image& image, int* bad) {
  const uint8_t* d = image.data();
  const uint8_t* tasks = d + Le32(d + YONO_HEADER_TASK_TABLE_OFFSET_OFF);
  const uint8_t* cbs = d + Le32(d + YONO_HEADER_CODEBOOK_TABLE_OFFSET_OFF);
  uint32_t worst = 0;
  for (uint32_t t = 0; t < image.task_count(); ++t) {
    const uint8_t* e = tasks + YONO_TASK_ENTRY_SIZE * t;
    const uint8_t* table = d + Le32(e + YONO_TASK_FILL_TABLE_OFFSET_OFF);
    image.Rebuild(t, yono_test_region, yono_test_region_size, nullptr);
    for (uint32_t r = 0; r < Le32(e + YONO_TASK_FILL_COUNT_OFF); ++r) {
      const uint8_t* f = table + YONO_FILL_RECORD_SIZE * r;
      if (f[YONO_FILL_KIND_OFF] != YONO_FILL_KIND_PQ) continue;
      uint8_t rec[YONO_FILL_RECORD_SIZE];
      memcpy(rec, f, sizeof rec);
      memset(rec + YONO_FILL_DST_OFFSET_OFF, 0, 4);
      memset(rec + YONO_FILL_SRC_OFFSET_OFF, 0, 4);
      const uint32_t len = Le32(f + YONO_FILL_LENGTH_OFF);
      const uint32_t first = f[YONO_FILL_CODEBOOK_FIRST_OFF] | (f[YONO_FILL_CODEBOOK_FIRST_OFF + 1] << 8);
      const uint32_t s = cbs[YONO_CODEBOOK_ENTRY_SIZE * first + YONO_CODEBOOK_SUBVECTOR_LEN_OFF];
      const uint8_t* idx = d + Le32(f + YONO_FILL_SRC_OFFSET_OFF);
      static int8_t out[256 * 1024];
      if (len > sizeof out || image.CheckRecord(rec, idx, (len + s - 1) / s, nullptr) != yono::Status::kOk) {
        ++*bad;
        continue;
      }
      uint8_t* const top = StackPointer();
      PaintStack();
      const yono::Status st = image.DecodeRecord(rec, idx, out, len);
      const uint32_t u = StackUsed(top);
      worst = u > worst ? u : worst;
      if (st != yono::Status::kOk ||
          memcmp(out, yono_test_region + Le32(f + YONO_FILL_DST_OFFSET_OFF), len) != 0)
        ++*bad;
    }
  }
  return worst;
}

}  // namespace

int main() {
  if (yono_test_skip) {
    printf("YONO_SKIP: %s\n", yono_test_skip_reason);
    return 0;
  }
  yono::Image image;
  const yono::Status st = image.Open(yono_test_image, yono_test_image_size);
  if (st != yono::Status::kOk) {
    printf("FAIL: Open: %s\n", yono::StatusString(st));
    return 1;
  }
  printf("image %lu bytes at %p, %lu tasks, region %lu bytes at %p\n",
         (unsigned long)image.size(), (const void*)yono_test_image,
         (unsigned long)image.task_count(), (unsigned long)yono_test_region_size,
         (void*)yono_test_region);
  if (image.task_count() != yono_test_task_count) {
    printf("FAIL: task count %lu, host says %lu\n", (unsigned long)image.task_count(),
           (unsigned long)yono_test_task_count);
    return 1;
  }
  int failures = 0;
  for (uint32_t t = 0; t < image.task_count(); ++t) {
    const uint32_t size = image.model_size(t);
    memset(yono_test_region, 0xA5, yono_test_region_size);
    uint32_t written = 0;
    const yono::Status rs = image.Rebuild(t, yono_test_region, yono_test_region_size, &written);
    const uint32_t crc = rs == yono::Status::kOk ? yono::Crc32(yono_test_region, size) : 0;
    bool guard_ok = true;
    for (uint32_t i = size; i < yono_test_region_size; ++i)
      guard_ok = guard_ok && yono_test_region[i] == 0xA5;
    const bool ok = rs == yono::Status::kOk && written == size && crc == image.model_crc32(t) &&
                    crc == yono_test_expected_crc[t] && guard_ok;
    printf("  %-44s %7lu bytes crc %08lx image %08lx host %08lx %s%s\n", image.task_name(t),
           (unsigned long)size, (unsigned long)crc, (unsigned long)image.model_crc32(t),
           (unsigned long)yono_test_expected_crc[t], ok ? "ok" : "FAIL",
           rs == yono::Status::kOk ? "" : yono::StatusString(rs));
    if (!ok) ++failures;
  }
  // Stack of one Rebuild(), worst task, without and with an attached cache.
  uint32_t used = 0, used_cached = 0;
  for (uint32_t t = 0; t < image.task_count(); ++t) {
    const uint32_t u = MeasureRebuild(image, t);
    used = u > used ? u : used;
  }
  const bool can_cache = image.codeword_cache_size() <= sizeof g_cw_cache &&
                         image.AttachCodewordCache(g_cw_cache, sizeof g_cw_cache) ==
                             yono::Status::kOk;
  for (uint32_t t = 0; can_cache && t < image.task_count(); ++t) {
    const uint32_t u = MeasureRebuild(image, t);
    used_cached = u > used_cached ? u : used_cached;
  }
  const bool stack_ok = used <= kDocumentedStack + kLibcSlack &&
                        used_cached <= kDocumentedStackCached + kLibcSlack;
  printf("stack of one Rebuild(): %lu B without a codeword cache, %lu B with one attached "
         "(image.h: %lu / %lu B + libc) %s\n", (unsigned long)used, (unsigned long)used_cached,
         (unsigned long)kDocumentedStack, (unsigned long)kDocumentedStackCached,
         stack_ok ? "ok" : "FAIL");
  if (!stack_ok) ++failures;
  // The decode-record path (flash tasks), without and with the cache.
  int bad = 0;
  yono::Image plain;
  plain.Open(yono_test_image, yono_test_image_size);
  const uint32_t dec = MeasureDecodeRecords(plain, &bad);
  const uint32_t dec_cached = can_cache ? MeasureDecodeRecords(image, &bad) : 0;
  const bool dec_ok = bad == 0 && dec <= kDocumentedStack + kLibcSlack &&
                      dec_cached <= kDocumentedStackCached + kLibcSlack;
  printf("decode records: %s; stack of one DecodeRecord(): %lu B without a codeword cache, "
         "%lu B with one %s\n", bad == 0 ? "equal to the rebuild" : "MISMATCH",
         (unsigned long)dec, (unsigned long)dec_cached, dec_ok ? "ok" : "FAIL");
  if (!dec_ok) ++failures;
  printf(failures == 0 ? "PASS\n" : "FAIL (%d tasks)\n", failures);
  return failures == 0 ? 0 : 1;
}
