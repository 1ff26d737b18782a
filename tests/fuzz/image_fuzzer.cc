// libFuzzer target over the image reader: Open() of arbitrary bytes, then a
// rebuild of every task of an accepted image through every rebuild path the
// API offers, into a fixed 16-aligned region with guard bytes around it.
//
// Checks (any failure aborts, i.e. is a crash for libFuzzer):
//  - no read outside the image: the input is copied into a heap buffer of
//    exactly its size, so ASan flags any read past it;
//  - no write outside [dst, dst + model_size): guard bytes before the region
//    and right after model_size are checked after each rebuild (and, under
//    ASan, everything past model_size is poisoned during the rebuild);
//  - the contract of image.h: a failed Open() leaves the image closed; an
//    opened image rebuilds every task (valid arguments) without error, and
//    all paths (stack cache, no cache, caller workspace, attached codeword
//    cache) write the same bytes, every byte of the model;
//  - argument errors give their specific status;
//  - flash tasks: flash_model() points at the task's bytes in the image and
//    they equal the rebuild; rebuild tasks: model_size <= max_model_size;
//  - decode records: every PQ / PQ_RESIDUAL fill record of an opened image,
//    taken as a decode record with its index array, passes
//    yono_image_check_record and decodes (cached and not) to exactly the
//    bytes the rebuild wrote at its dst_offset; bytes after image_size are
//    also tried as a record + index span (accepted ones must decode inside
//    their length).
//
// Inputs with a bad CRC are opened as they are (must fail with kBadCrc or an
// earlier header error) and then again with the CRC fixed, so that the
// fuzzer gets past the checksum. Bytes after image_size (the input may be
// longer) choose the caller-workspace size.
//
// Built as `yono_image_fuzzer` (clang, -DYONO_FUZZ=ON) and, with
// replay_main.cc instead of libFuzzer, as `yono_fuzz_replay` (any compiler),
// which ctest runs over tests/fuzz/regressions/.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yono/image.h"
#include "yono/image_format.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define YONO_FUZZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(YONO_FUZZ_ASAN)
#define YONO_FUZZ_ASAN 1
#endif
#ifdef YONO_FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#define YONO_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define YONO_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define YONO_POISON(p, n) ((void)(p), (void)(n))
#define YONO_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace {

constexpr uint32_t kRegionSize = 1u << 20;  // models larger than this: kRegionTooSmall only
constexpr uint32_t kGuard = 64;
constexpr uint8_t kGuardByte = 0xA5;

// [guard | region (kRegionSize) | guard]; the region starts 64-aligned.
alignas(64) uint8_t g_arena[kGuard + kRegionSize + kGuard];
uint8_t* const g_region = g_arena + kGuard;

[[noreturn]] void Fail(const char* what, uint32_t task, int32_t a, int32_t b) {
  fprintf(stderr, "yono_image_fuzzer: %s (task %u: %d vs %d)\n", what, task, a, b);
  fflush(stderr);
  abort();
}

uint32_t Rd32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) |
         (uint32_t{p[3]} << 24);
}

// Rebuild task `t` into g_region with dst_size `n_dst` through `path`; the
// region's first min(n_dst, model_size) bytes are preset to `fill`. Checks the
// guards around [g_region, g_region + n_dst). Returns the status.
enum Path { kStack, kNoCache, kWorkspace };
yono_status GuardedRebuild(const yono_image* im, uint32_t t, uint8_t* dst, uint32_t n_dst,
                           Path path, uint8_t* ws, uint32_t ws_size, uint32_t* written) {
  uint8_t* const end = dst + n_dst;
  uint8_t* const arena_end = g_arena + sizeof g_arena;
  memset(g_arena, kGuardByte, static_cast<size_t>(dst - g_arena));
  memset(end, kGuardByte, kGuard);
  YONO_POISON(g_arena, static_cast<size_t>(dst - g_arena));
  YONO_POISON(end, static_cast<size_t>(arena_end - end));
  yono_status st;
  switch (path) {
    case kStack: st = yono_image_rebuild(im, t, dst, n_dst, written); break;
    case kNoCache: st = yono_image_rebuild_ws(im, t, dst, n_dst, written, nullptr, 0); break;
    default: st = yono_image_rebuild_ws(im, t, dst, n_dst, written, ws, ws_size); break;
  }
  YONO_UNPOISON(g_arena, sizeof g_arena);
  for (const uint8_t* p = g_arena; p < dst; ++p)
    if (*p != kGuardByte) Fail("write before the region", t, static_cast<int32_t>(p - dst), 0);
  for (uint32_t i = 0; i < kGuard; ++i)
    if (end[i] != kGuardByte) Fail("write past dst_size", t, static_cast<int32_t>(i), 0);
  return st;
}

void Expect(yono_status got, yono_status want, const char* what, uint32_t t) {
  if (got != want) Fail(what, t, got, want);
}

// Every PQ fill record of task t as a decode record: checked, and decoded
// (stack workspace, no workspace, attached cache) to the rebuilt bytes in
// `model` at its dst_offset.
void CheckDecodeRecords(const yono_image* im, const yono_image* cached, uint32_t t,
                        const uint8_t* model) {
  const uint8_t* entry = im->data + im->task_table + YONO_TASK_ENTRY_SIZE * t;
  const uint32_t table = Rd32(entry + YONO_TASK_FILL_TABLE_OFFSET_OFF);
  const uint32_t count = Rd32(entry + YONO_TASK_FILL_COUNT_OFF);
  for (uint32_t r = 0; r < count; ++r) {
    uint8_t rec[YONO_FILL_RECORD_SIZE];
    memcpy(rec, im->data + table + r * YONO_FILL_RECORD_SIZE, sizeof rec);
    const uint8_t kind = rec[YONO_FILL_KIND_OFF];
    if (kind != YONO_FILL_KIND_PQ && kind != YONO_FILL_KIND_PQ_RESIDUAL) continue;
    const uint32_t dst = Rd32(rec + YONO_FILL_DST_OFFSET_OFF);
    const uint32_t src = Rd32(rec + YONO_FILL_SRC_OFFSET_OFF);
    const uint32_t length = Rd32(rec + YONO_FILL_LENGTH_OFF);
    memset(rec + YONO_FILL_DST_OFFSET_OFF, 0, 4);
    memset(rec + YONO_FILL_SRC_OFFSET_OFF, 0, 4);
    // The exact index span (the image validated the record): n + n2.
    const uint8_t* idx = im->data + src;
    const uint8_t* cb = im->data + im->codebook_table;
    const uint32_t first = uint32_t{rec[YONO_FILL_CODEBOOK_FIRST_OFF]} |
                           (uint32_t{rec[YONO_FILL_CODEBOOK_FIRST_OFF + 1]} << 8);
    const uint32_t s1 = cb[YONO_CODEBOOK_ENTRY_SIZE * first + YONO_CODEBOOK_SUBVECTOR_LEN_OFF];
    uint32_t n = (length + s1 - 1) / s1;
    if (kind == YONO_FILL_KIND_PQ_RESIDUAL) {
      const uint32_t rf = uint32_t{rec[YONO_FILL_RESIDUAL_FIRST_OFF]} |
                          (uint32_t{rec[YONO_FILL_RESIDUAL_FIRST_OFF + 1]} << 8);
      const uint32_t s2 = cb[YONO_CODEBOOK_ENTRY_SIZE * rf + YONO_CODEBOOK_SUBVECTOR_LEN_OFF];
      n += (length + s2 - 1) / s2;
    }
    uint32_t got = 0;
    Expect(yono_image_check_record(im, rec, idx, n, &got), YONO_OK,
           "fill record refused as a decode record", t);
    if (n > 1)
      Expect(yono_image_check_record(im, rec, idx, n - 1, nullptr), YONO_OUT_OF_BOUNDS,
             "decode record with one index short", t);
    if (got != length) Fail("check_record length", t, 0, 0);
    uint8_t* out = static_cast<uint8_t*>(malloc(length));
    if (out == nullptr) abort();
    for (int p = 0; p < 3; ++p) {
      memset(out, 0x5A + p, length);
      const yono_status st =
          p == 0   ? yono_image_decode_record(im, rec, idx, reinterpret_cast<int8_t*>(out), length)
          : p == 1 ? yono_image_decode_record_ws(im, rec, idx, reinterpret_cast<int8_t*>(out),
                                                 length, nullptr, 0)
                   : yono_image_decode_record(cached, rec, idx, reinterpret_cast<int8_t*>(out),
                                              length);
      Expect(st, YONO_OK, "decode_record", t);
      if (memcmp(out, model + dst, length) != 0) Fail("decode_record != rebuild", t, static_cast<int32_t>(r), p);
    }
    if (length > 1)
      Expect(yono_image_decode_record(im, rec, idx, reinterpret_cast<int8_t*>(out), length - 1),
             YONO_REGION_TOO_SMALL, "decode_record into length - 1", t);
    free(out);
  }
}

void CheckOpenedImage(const yono_image* im, const yono_image* cached, const uint8_t* tail,
                      uint32_t tail_size) {
  const uint32_t tasks = yono_image_task_count(im);
  if (tasks == 0 || tasks != yono_image_task_count(cached)) Fail("task_count", 0, 0, 0);
  if (im->cw_cache != nullptr || cached->cw_cache == nullptr) Fail("cache attached", 0, 0, 0);

  // Caller workspace: size chosen by the bytes after the image (if any).
  uint32_t ws_size = 1024;
  if (tail_size >= 2) ws_size = (uint32_t{tail[0]} | (uint32_t{tail[1]} << 8)) %
                                (YONO_MAX_WORKSPACE_BYTES + 1u);
  uint8_t* ws = static_cast<uint8_t*>(malloc(ws_size == 0 ? 1 : ws_size));
  if (ws == nullptr) abort();

  uint32_t written = 0;
  Expect(yono_image_rebuild(im, tasks, g_region, kRegionSize, &written), YONO_NO_SUCH_TASK,
         "rebuild(task_count)", tasks);
  Expect(yono_image_rebuild(im, 0, nullptr, kRegionSize, &written), YONO_BAD_ARGUMENT,
         "rebuild(null dst)", 0);

  for (uint32_t t = 0; t < tasks; ++t) {
    const uint32_t n = yono_image_model_size(im, t);
    const bool flash = yono_image_task_is_flash(im, t) != 0;
    if (!flash && n > im->max_model_size) Fail("model_size > max_model_size", t, 0, 0);
    const uint8_t* in_place = yono_image_flash_model(im, t);
    if (flash != (in_place != nullptr)) Fail("flash_model vs is_flash", t, flash, 0);
    if (in_place != nullptr &&
        (in_place < im->data || in_place + n > im->data + im->size))
      Fail("flash model outside the image", t, 0, 0);
    if (yono_image_arena_size(im, t) > im->max_arena_size) Fail("arena_size > max", t, 0, 0);
    const char* name = yono_image_task_name(im, t);
    if (name == nullptr) Fail("task_name null", t, 0, 0);
    const size_t len = strlen(name);  // NUL inside the image (ASan checks)
    if (len > YONO_MAX_NAME_LENGTH) Fail("task name longer than the limit", t, static_cast<int32_t>(len), 0);
    // find_task(name) finds this task or an earlier one of the same name, or
    // nothing when the stored name has a NUL inside (name_length > strlen:
    // such a name cannot be asked for as a C string).
    const uint32_t name_length =
        Rd32(im->data + im->task_table + YONO_TASK_ENTRY_SIZE * t + YONO_TASK_NAME_LENGTH_OFF);
    const int32_t found = yono_image_find_task(im, name);
    if (found < 0 ? len == name_length : static_cast<uint32_t>(found) > t)
      Fail("find_task", t, found, static_cast<int32_t>(name_length));

    if (n > kRegionSize) {  // too big for the fuzz region: only the refusal
      Expect(GuardedRebuild(im, t, g_region, kRegionSize, kStack, nullptr, 0, &written),
             YONO_REGION_TOO_SMALL, "rebuild into a too small region", t);
      if (written != 0) Fail("written != 0 on failure", t, static_cast<int32_t>(written), 0);
      continue;
    }
    if (n > 0) {
      written = 1;
      Expect(GuardedRebuild(im, t, g_region, n - 1, kStack, nullptr, 0, &written),
             YONO_REGION_TOO_SMALL, "rebuild into model_size - 1", t);
      if (written != 0) Fail("written != 0 on failure", t, static_cast<int32_t>(written), 0);
    }
    Expect(yono_image_rebuild(im, t, g_region + 8, kRegionSize - 8, &written),
           YONO_BAD_ALIGNMENT, "misaligned rebuild", t);

    // Every path into exactly model_size bytes, region preset to a different
    // byte each time: equal CRCs mean every byte was written, identically.
    uint32_t crc[4] = {0, 0, 0, 0};
    const Path paths[3] = {kStack, kNoCache, kWorkspace};
    for (int p = 0; p < 4; ++p) {
      memset(g_region, 0x11 * (p + 1), n);
      written = 0;
      const yono_status st =
          p < 3 ? GuardedRebuild(im, t, g_region, n, paths[p], ws, ws_size, &written)
                : GuardedRebuild(cached, t, g_region, n, kStack, nullptr, 0, &written);
      Expect(st, YONO_OK, "rebuild of an opened image failed", t);
      if (written != n) Fail("written != model_size", t, static_cast<int32_t>(written), 0);
      crc[p] = yono_crc32(g_region, n, 0);
      if (p > 0 && crc[p] != crc[0]) Fail("rebuild paths disagree", t, p, 0);
    }
    if (in_place != nullptr && memcmp(in_place, g_region, n) != 0)
      Fail("flash model != its rebuild", t, 0, 0);
    CheckDecodeRecords(im, cached, t, g_region);
  }
  // The tail after the image as one decode record + its indices.
  if (tail_size >= YONO_FILL_RECORD_SIZE) {
    const uint8_t* idx = tail + YONO_FILL_RECORD_SIZE;
    const uint32_t idx_n = tail_size - YONO_FILL_RECORD_SIZE;
    uint32_t length = 1;
    const yono_status st = yono_image_check_record(im, tail, idx, idx_n, &length);
    if (st != YONO_OK && length != 0) Fail("check_record: length on failure", 0, st, 0);
    if (st == YONO_OK && length <= kRegionSize) {
      uint8_t* out = static_cast<uint8_t*>(malloc(length));  // ASan: exact size
      if (out == nullptr) abort();
      Expect(yono_image_decode_record(im, tail, idx, reinterpret_cast<int8_t*>(out), length),
             YONO_OK, "decode of a checked tail record", 0);
      free(out);
    }
  }
  free(ws);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 0xFFFFFFFFu) return 0;
  const uint32_t n = static_cast<uint32_t>(size);
  // Exactly-sized, writable heap copy (we may fix the CRC in it).
  uint8_t* buf = static_cast<uint8_t*>(malloc(size == 0 ? 1 : size));
  if (buf == nullptr) abort();
  if (size != 0) memcpy(buf, data, size);

  yono_image im;
  yono_status st = yono_image_open(&im, buf, n);
  if (st == YONO_BAD_CRC) {
    const uint32_t image_size = Rd32(buf + 8);  // Open checked 64 <= image_size <= n
    const uint32_t crc = yono_crc32(buf + 16, image_size - 16, 0);
    for (int i = 0; i < 4; ++i) buf[12 + i] = static_cast<uint8_t>(crc >> (8 * i));
    st = yono_image_open(&im, buf, n);
    if (st == YONO_BAD_CRC) Fail("CRC still bad after fixing it", 0, 0, 0);
  }
  if (st != YONO_OK) {
    if (im.data != nullptr || yono_image_task_count(&im) != 0)
      Fail("failed Open left the image open", 0, st, 0);
    uint32_t written = 1;
    Expect(yono_image_rebuild(&im, 0, g_region, kRegionSize, &written), YONO_NOT_OPEN,
           "rebuild of a closed image", 0);
    if (written != 0) Fail("written != 0 on failure", 0, 0, 0);
    free(buf);
    return 0;
  }
  if (im.size > n || im.data != buf) Fail("image_size", 0, static_cast<int32_t>(im.size), 0);

  // A second handle with the attached int8 codeword cache (exactly sized).
  yono_image cached = im;  // a plain struct: copies are independent handles
  const uint32_t cache_size = yono_image_codeword_cache_size(&cached);
  uint8_t* cache = static_cast<uint8_t*>(malloc(cache_size == 0 ? 1 : cache_size));
  if (cache == nullptr) abort();
  if (cache_size > 0)
    Expect(yono_image_attach_codeword_cache(&cached, cache, cache_size - 1),
           YONO_REGION_TOO_SMALL, "attach a too small cache", 0);
  Expect(yono_image_attach_codeword_cache(&cached, cache, cache_size), YONO_OK,
         "attach cache", 0);

  CheckOpenedImage(&im, &cached, buf + im.size, n - im.size);

  free(cache);
  free(buf);
  return 0;
}
