// Rebuild(): skeleton copy plus ZERO / RAW / PQ records into a model region;
// decode records (a flash task's YONO_DECODE operators: one PQ /
// PQ_RESIDUAL record and its index array, checked once, decoded at every
// inference); the attached codeword cache; flash-task accessors.
#include <stdint.h>
#include <string.h>

#include "image_internal.h"
#include "yono/image.h"
#include "yono/image_format.h"

namespace yono {
namespace internal {
namespace {

yono_status RebuildImpl(const yono_image* im, uint32_t task_index, uint8_t* dst,
                        uint32_t dst_size, uint32_t* written, int8_t* cache_buf,
                        uint32_t cache_size) {
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
      case YONO_FILL_KIND_ZERO: memset(out, 0, f.length); break;
      case YONO_FILL_KIND_RAW: memcpy(out, img + f.src, f.length); break;
      default:  // YONO_FILL_KIND_PQ or _PQ_RESIDUAL (validated)
        DecodePqRecord(*im, f, img + f.src, &cache, out);
        break;
    }
    cursor = f.dst + f.length;
  }
  if (task.model_size > cursor)
    memcpy(dst + cursor, skel, task.model_size - cursor);
  if (written != nullptr) *written = task.model_size;
  return YONO_OK;
}

// The cheap checks of a decode: everything else was checked by
// yono_image_check_record.
yono_status DecodeRecordImpl(const yono_image* im, const uint8_t* record,
                             const uint8_t* indices, int8_t* dst,
                             uint32_t dst_size, int8_t* cache_buf,
                             uint32_t cache_size) {
  if (!IsOpen(im)) return YONO_NOT_OPEN;
  if (record == nullptr || indices == nullptr || dst == nullptr)
    return YONO_BAD_ARGUMENT;
  const Fill f = ReadFill(record);
  if (f.kind != YONO_FILL_KIND_PQ && f.kind != YONO_FILL_KIND_PQ_RESIDUAL)
    return YONO_BAD_FILL_RECORD;
  if (dst_size < f.length) return YONO_REGION_TOO_SMALL;
  Cache cache{cache_buf, cache_buf != nullptr ? cache_size : 0u, 0, 0, {}, {}};
  DecodePqRecord(*im, f, indices, &cache, reinterpret_cast<uint8_t*>(dst));
  return YONO_OK;
}

#if YONO_STACK_CACHE_BYTES > 0
// Their own frames, so that YONO_STACK_CACHE_BYTES are on the stack only
// when no codeword cache is attached.
YONO_NOINLINE yono_status RebuildWithStackCache(const yono_image* im,
                                                uint32_t task_index,
                                                uint8_t* dst, uint32_t dst_size,
                                                uint32_t* written) {
  int8_t cache[YONO_STACK_CACHE_BYTES];
  return RebuildImpl(im, task_index, dst, dst_size, written, cache,
                     YONO_STACK_CACHE_BYTES);
}
YONO_NOINLINE yono_status DecodeRecordWithStackCache(const yono_image* im,
                                                     const uint8_t* record,
                                                     const uint8_t* indices,
                                                     int8_t* dst,
                                                     uint32_t dst_size) {
  int8_t cache[YONO_STACK_CACHE_BYTES];
  return DecodeRecordImpl(im, record, indices, dst, dst_size, cache,
                          YONO_STACK_CACHE_BYTES);
}
#endif

bool IsFlash(const yono_image* image, uint32_t task) {
  return IsOpen(image) && task < image->task_count &&
         (ReadTask(image->data, image->task_table, task).flags &
          YONO_TASK_FLAG_FLASH) != 0;
}

}  // namespace
}  // namespace internal
}  // namespace yono

using namespace yono::internal;

extern "C" {

int8_t yono_half_to_int8(uint16_t h) { return HalfToInt8(h); }

uint32_t yono_image_codeword_cache_size(const yono_image* image) {
  return IsOpen(image) ? image->codebook_count * image->cw_stride : 0u;
}

yono_status yono_image_attach_codeword_cache(yono_image* image, uint8_t* cache,
                                             uint32_t size) {
  if (!IsOpen(image)) return YONO_NOT_OPEN;
  image->cw_cache = nullptr;
  if (cache == nullptr) return YONO_OK;
  if (size < yono_image_codeword_cache_size(image))
    return YONO_REGION_TOO_SMALL;
  int8_t* dst = reinterpret_cast<int8_t*>(cache);
  for (uint32_t c = 0; c < image->codebook_count; ++c) {
    const Codebook cb = ReadCodebook(image->data, image->codebook_table, c);
    ConvertCodebook(image->data + cb.data_offset, cb.k * cb.s,
                    dst + c * image->cw_stride);
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

yono_status yono_image_rebuild_ws(const yono_image* image, uint32_t task,
                                  uint8_t* dst, uint32_t dst_size,
                                  uint32_t* written, uint8_t* workspace,
                                  uint32_t workspace_size) {
  return RebuildImpl(image, task, dst, dst_size, written,
                     reinterpret_cast<int8_t*>(workspace), workspace_size);
}

int yono_image_task_is_flash(const yono_image* image, uint32_t task) {
  return IsFlash(image, task) ? 1 : 0;
}

const uint8_t* yono_image_flash_model(const yono_image* image, uint32_t task) {
  if (!IsFlash(image, task)) return nullptr;
  // Validated: skeleton_size == model_size, inside the image, 16-aligned.
  return image->data +
         ReadTask(image->data, image->task_table, task).skeleton_offset;
}

yono_status yono_image_check_record(const yono_image* image,
                                    const uint8_t* record,
                                    const uint8_t* indices,
                                    uint32_t index_bytes, uint32_t* length) {
  if (length != nullptr) *length = 0;
  if (!IsOpen(image)) return YONO_NOT_OPEN;
  if (record == nullptr || (indices == nullptr && index_bytes != 0))
    return YONO_BAD_ARGUMENT;
  const Fill f = ReadFill(record);
  uint32_t n = 0;
  // An empty index span still gets the record checks; its stage then
  // reports YONO_OUT_OF_BOUNDS (a record always needs >= 1 index).
  static const uint8_t kNoIndex = 0;
  const yono_status st = ValidatePqRecord(
      *image, f, indices != nullptr ? indices : &kNoIndex, index_bytes, &n);
  if (st != YONO_OK) return st;
  // The span must be exactly the record's index array.
  if (n != index_bytes) return YONO_OUT_OF_BOUNDS;
  if (length != nullptr) *length = f.length;
  return YONO_OK;
}

yono_status yono_image_decode_record(const yono_image* image,
                                     const uint8_t* record,
                                     const uint8_t* indices, int8_t* dst,
                                     uint32_t dst_size) {
#if YONO_STACK_CACHE_BYTES > 0
  if (!IsOpen(image) || image->cw_cache == nullptr)
    return DecodeRecordWithStackCache(image, record, indices, dst, dst_size);
#endif
  return DecodeRecordImpl(image, record, indices, dst, dst_size, nullptr, 0);
}

yono_status yono_image_decode_record_ws(const yono_image* image,
                                        const uint8_t* record,
                                        const uint8_t* indices, int8_t* dst,
                                        uint32_t dst_size, uint8_t* workspace,
                                        uint32_t workspace_size) {
  return DecodeRecordImpl(image, record, indices, dst, dst_size,
                          reinterpret_cast<int8_t*>(workspace), workspace_size);
}
}  // extern "C"
