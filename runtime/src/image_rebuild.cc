// Rebuild(): skeleton copy plus ZERO / RAW / PQ records, with the codeword
// caches (an attached one, or a per-call workspace); the test hooks.
#include <stdint.h>
#include <string.h>

#include "image_internal.h"
#include "yono/image.h"
#include "yono/image_format.h"
#include "yono/image_testing.h"

using namespace yono::internal;

namespace {

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
  for (uint32_t t = 0; t < n; ++t) dst[t] = HalfToInt8(Rd16(half + 2u * t));
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
    pq->k256 = pq->k256 && cb.k == YONO_MAX_CODEWORDS;
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
  for (uint32_t r = 0; r < task.fill_count; ++r, rec += YONO_FILL_RECORD_SIZE) {
    const Fill f = ReadFill(rec);
    const uint32_t gap = f.dst - cursor;
    if (gap != 0) {
      memcpy(dst + cursor, skel, gap);
      skel += gap;
    }
    uint8_t* out = dst + f.dst;
    switch (f.kind) {
      case YONO_FILL_KIND_ZERO:
        memset(out, 0, f.length);
        break;
      case YONO_FILL_KIND_RAW:
        memcpy(out, img + f.src, f.length);
        break;
      default: {  // YONO_FILL_KIND_PQ (validated)
        Pq pq;
        PreparePq(*im, f, &cache, &pq);
#if YONO_SIMD_X86
        pq.planes = PrepareSimd(pq, f.length, planes);
#endif
        if (f.layout == YONO_LAYOUT_KERNEL_MAJOR) {
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

#if YONO_STACK_CACHE_BYTES > 0
// Its own frame, so that YONO_STACK_CACHE_BYTES are on the stack only when
// no codeword cache is attached.
YONO_NOINLINE yono_status RebuildWithStackCache(const yono_image* im, uint32_t task_index,
                                                uint8_t* dst, uint32_t dst_size,
                                                uint32_t* written) {
  int8_t cache[YONO_STACK_CACHE_BYTES];
  return RebuildImpl(im, task_index, dst, dst_size, written, cache, YONO_STACK_CACHE_BYTES);
}
#endif

}  // namespace

extern "C" {

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
yono_status yono_image_rebuild(const yono_image* image, uint32_t task,
                               uint8_t* dst, uint32_t dst_size,
                               uint32_t* written) {
#if YONO_STACK_CACHE_BYTES > 0
  // With an attached cache the stack workspace would go unused: skip its frame.
  if (!IsOpen(image) || image->cw_cache == nullptr)
    return RebuildWithStackCache(image, task, dst, dst_size, written);
#endif
  return RebuildImpl(image, task, dst, dst_size, written, nullptr, 0);
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
