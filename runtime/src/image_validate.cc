// yono_image_open(): validates the whole image once (docs/image-format.md,
// "Validation"), so that decoding never has to check anything; accessors.
#include <stdint.h>
#include <string.h>

#include "image_internal.h"
#include "yono/image.h"
#include "yono/image_format.h"

using namespace yono::internal;

namespace {

// One PQ stage: M codebooks from `first` sharing s, `*n` = ceil(length/s)
// index bytes at `idx` (at most `avail` readable), every index < K of its
// codebook.
yono_status ValidateStage(const yono_image& im, uint32_t length, uint32_t first,
                          uint32_t m_count, const uint8_t* idx, uint64_t avail,
                          uint32_t* n_out) {
  const uint8_t* img = im.data;
  if (m_count < 1 || m_count > kMaxSubCodebooks) return YONO_BAD_FILL_RECORD;
  if (first + m_count > im.codebook_count) return YONO_BAD_FILL_RECORD;
  uint32_t k[kMaxSubCodebooks] = {};
  const uint32_t s = ReadCodebook(img, im.codebook_table, first).s;
  for (uint32_t m = 0; m < m_count; ++m) {
    const Codebook cb = ReadCodebook(img, im.codebook_table, first + m);
    if (cb.s != s) return YONO_BAD_FILL_RECORD;
    k[m] = cb.k;
  }
  const uint32_t n = StageIndexBytes(length, s);
  if (n > avail) return YONO_OUT_OF_BOUNDS;
  *n_out = n;
  bool all_full = true;  // K = 256: every one-byte index is valid
  for (uint32_t m = 0; m < m_count; ++m)
    all_full = all_full && k[m] == YONO_MAX_CODEWORDS;
  if (all_full) {
    // nothing to scan
  } else if (m_count == 1) {
    uint32_t mx = 0;
    for (uint32_t j = 0; j < n; ++j) mx = idx[j] > mx ? idx[j] : mx;
    if (mx >= k[0]) return YONO_BAD_INDEX;
  } else {
    uint32_t m = 0;
    uint32_t bad = 0;
    for (uint32_t j = 0; j < n; ++j) {
      bad |= idx[j] >= k[m] ? 1u : 0u;
      m = (m + 1 == m_count) ? 0 : m + 1;
    }
    if (bad) return YONO_BAD_INDEX;
  }
  return YONO_OK;
}

// A flash task is stored whole: no fill table, the skeleton is the model.
yono_status ValidateFlashTask(const Task& task) {
  if (task.fill_count != 0 || task.fill_table_offset != 0) return YONO_BAD_TASK;
  if (task.skeleton_size != task.model_size) return YONO_BAD_TASK;
  if (task.skeleton_offset % YONO_MODEL_ALIGNMENT != 0) return YONO_BAD_TASK;
  return YONO_OK;
}

}  // namespace

namespace yono {
namespace internal {

yono_status ValidatePqRecord(const yono_image& im, const Fill& f,
                             const uint8_t* idx, uint64_t avail,
                             uint32_t* index_bytes) {
  if (f.length == 0) return YONO_BAD_FILL_RECORD;
  if (f.kind != YONO_FILL_KIND_PQ && f.kind != YONO_FILL_KIND_PQ_RESIDUAL)
    return YONO_BAD_FILL_RECORD;
  if (f.layout == YONO_LAYOUT_KERNEL_MAJOR) {
    if (f.positions < 1 || f.inner < 1) return YONO_BAD_FILL_RECORD;
    const uint32_t pi = uint32_t{f.positions} * f.inner;
    if (f.length % pi != 0) return YONO_BAD_FILL_RECORD;
  } else if (f.layout != YONO_LAYOUT_LINEAR) {
    return YONO_BAD_FILL_RECORD;
  }
  uint32_t n = 0;
  yono_status st =
      ValidateStage(im, f.length, f.codebook_first, f.m, idx, avail, &n);
  if (st != YONO_OK) return st;
  uint32_t n2 = 0;
  if (f.kind == YONO_FILL_KIND_PQ_RESIDUAL) {
    // The residual stage's indices follow the first stage's.
    st = ValidateStage(im, f.length, f.residual_first, f.m2, idx + n, avail - n,
                       &n2);
    if (st != YONO_OK) return st;
  }
  *index_bytes = n + n2;
  return YONO_OK;
}

}  // namespace internal
}  // namespace yono

namespace {

yono_status ValidateTask(const yono_image& im, uint32_t t) {
  const uint8_t* img = im.data;
  const uint32_t size = im.size;
  const Task task = ReadTask(img, im.task_table, t);

  if (task.name_length < 1 || task.name_length > YONO_MAX_NAME_LENGTH)
    return YONO_BAD_TASK;
  if (!InBounds(task.name_offset, uint64_t{task.name_length} + 1, size))
    return YONO_OUT_OF_BOUNDS;
  if (img[task.name_offset + task.name_length] != 0) return YONO_BAD_TASK;
  // Names are C strings: no NUL inside.
  for (uint32_t i = 0; i < task.name_length; ++i)
    if (img[task.name_offset + i] == 0) return YONO_BAD_TASK;
  if ((task.flags & ~YONO_TASK_FLAGS_KNOWN) != 0) return YONO_BAD_TASK;
  const bool flash = (task.flags & YONO_TASK_FLAG_FLASH) != 0;
  if (flash) {
    const yono_status st = ValidateFlashTask(task);
    if (st != YONO_OK) return st;
  } else if (task.model_size > im.max_model_size) {
    // Rule 5 sizes the model region: rebuild tasks only.
    return YONO_BAD_HEADER;
  }
  if (task.arena_size > im.max_arena_size) return YONO_BAD_HEADER;
  if (!InBounds(task.skeleton_offset, task.skeleton_size, size))
    return YONO_OUT_OF_BOUNDS;
  if (!InBounds(task.fill_table_offset,
                uint64_t{task.fill_count} * YONO_FILL_RECORD_SIZE, size))
    return YONO_OUT_OF_BOUNDS;

  uint64_t cursor = 0;
  uint64_t filled = 0;
  for (uint32_t r = 0; r < task.fill_count; ++r) {
    const Fill f =
        ReadFill(img + task.fill_table_offset + r * YONO_FILL_RECORD_SIZE);
    if (f.length == 0) return YONO_BAD_FILL_RECORD;
    if (f.dst < cursor) return YONO_BAD_FILL_RECORD;  // unsorted / overlap
    const uint64_t end = uint64_t{f.dst} + f.length;
    if (end > task.model_size) return YONO_BAD_FILL_RECORD;
    cursor = end;
    filled += f.length;
    switch (f.kind) {
      case YONO_FILL_KIND_ZERO:
        if (f.layout != YONO_LAYOUT_LINEAR) return YONO_BAD_FILL_RECORD;
        break;
      case YONO_FILL_KIND_RAW:
        if (f.layout != YONO_LAYOUT_LINEAR) return YONO_BAD_FILL_RECORD;
        if (!InBounds(f.src, f.length, size)) return YONO_OUT_OF_BOUNDS;
        break;
      case YONO_FILL_KIND_PQ:
      case YONO_FILL_KIND_PQ_RESIDUAL: {
        if (f.src > size) return YONO_OUT_OF_BOUNDS;
        uint32_t n = 0;
        const yono_status st =
            ValidatePqRecord(im, f, img + f.src, size - f.src, &n);
        if (st != YONO_OK) return st;
        break;
      }
      default: return YONO_BAD_FILL_RECORD;
    }
  }
  if (filled + task.skeleton_size != task.model_size) return YONO_BAD_TASK;
  return YONO_OK;
}

}  // namespace

extern "C" {

const char* yono_status_string(yono_status status) {
  switch (status) {
    case YONO_OK: return "ok";
    case YONO_TOO_SMALL: return "buffer smaller than the image";
    case YONO_BAD_MAGIC: return "bad magic (not a yonoc image)";
    case YONO_BAD_VERSION: return "unsupported format_version";
    case YONO_BAD_HEADER: return "invalid header field";
    case YONO_BAD_CRC: return "image CRC-32 mismatch";
    case YONO_OUT_OF_BOUNDS: return "offset/size outside the image";
    case YONO_BAD_CODEBOOK: return "invalid codebook entry";
    case YONO_BAD_TASK: return "invalid task entry";
    case YONO_BAD_FILL_RECORD: return "invalid fill record";
    case YONO_BAD_INDEX: return "PQ index out of codebook range";
    case YONO_REGION_TOO_SMALL: return "model region smaller than model_size";
    case YONO_NO_SUCH_TASK: return "no such task";
    case YONO_NOT_OPEN: return "image not open";
    case YONO_BAD_ALIGNMENT: return "model region not 16-byte aligned";
    case YONO_BAD_ARGUMENT: return "null argument";
    default: return "unknown status";
  }
}
yono_status yono_image_open(yono_image* image, const uint8_t* data,
                            uint32_t size) {
  if (image == nullptr) return YONO_BAD_ARGUMENT;
  *image = yono_image{};
  if (data == nullptr) return YONO_BAD_ARGUMENT;
  if (size < YONO_HEADER_SIZE) return YONO_TOO_SMALL;
  if (memcmp(data + YONO_HEADER_MAGIC_OFF, YONO_MAGIC, YONO_MAGIC_SIZE) != 0)
    return YONO_BAD_MAGIC;
  if (Rd16(data + YONO_HEADER_FORMAT_VERSION_OFF) != YONO_FORMAT_VERSION)
    return YONO_BAD_VERSION;
  if (Rd16(data + YONO_HEADER_HEADER_SIZE_OFF) != YONO_HEADER_SIZE)
    return YONO_BAD_HEADER;
  const uint32_t image_size = Rd32(data + YONO_HEADER_IMAGE_SIZE_OFF);
  if (image_size < YONO_HEADER_SIZE) return YONO_BAD_HEADER;
  if (image_size > size) return YONO_TOO_SMALL;
  if (yono_crc32(data + YONO_CRC_START, image_size - YONO_CRC_START, 0) !=
      Rd32(data + YONO_HEADER_CRC32_OFF))
    return YONO_BAD_CRC;
  if (Rd32(data + YONO_HEADER_FLAGS_OFF) != 0) return YONO_BAD_HEADER;

  yono_image im{};
  im.data = data;
  im.size = image_size;
  im.codebook_count = Rd16(data + YONO_HEADER_CODEBOOK_COUNT_OFF);
  im.task_count = Rd16(data + YONO_HEADER_TASK_COUNT_OFF);
  im.codebook_table = Rd32(data + YONO_HEADER_CODEBOOK_TABLE_OFFSET_OFF);
  im.task_table = Rd32(data + YONO_HEADER_TASK_TABLE_OFFSET_OFF);
  im.max_model_size = Rd32(data + YONO_HEADER_MAX_MODEL_SIZE_OFF);
  im.max_arena_size = Rd32(data + YONO_HEADER_MAX_ARENA_SIZE_OFF);
  if (im.task_count == 0) return YONO_BAD_HEADER;
  // Build notes: opaque to the runtime, but they must lie inside the image.
  const uint32_t notes_offset = Rd32(data + YONO_HEADER_NOTES_OFFSET_OFF);
  const uint32_t notes_size = Rd32(data + YONO_HEADER_NOTES_SIZE_OFF);
  if (notes_size == 0 && notes_offset != 0) return YONO_BAD_HEADER;
  if (!InBounds(notes_offset, notes_size, image_size))
    return YONO_OUT_OF_BOUNDS;
  if (!InBounds(im.codebook_table,
                uint64_t{im.codebook_count} * YONO_CODEBOOK_ENTRY_SIZE,
                image_size) ||
      !InBounds(im.task_table, uint64_t{im.task_count} * YONO_TASK_ENTRY_SIZE,
                image_size))
    return YONO_OUT_OF_BOUNDS;

  for (uint32_t i = 0; i < im.codebook_count; ++i) {
    const Codebook cb = ReadCodebook(data, im.codebook_table, i);
    if (cb.s < 1 || cb.s > YONO_MAX_SUBVECTOR_LEN || cb.k < 1 ||
        cb.k > YONO_MAX_CODEWORDS || cb.data_size != cb.k * cb.s * 2u)
      return YONO_BAD_CODEBOOK;
    if (!InBounds(cb.data_offset, cb.data_size, image_size))
      return YONO_OUT_OF_BOUNDS;
    if (cb.k * cb.s > im.cw_stride) im.cw_stride = cb.k * cb.s;
  }
  for (uint32_t t = 0; t < im.task_count; ++t) {
    const yono_status st = ValidateTask(im, t);
    if (st != YONO_OK) return st;
  }
  *image = im;
  return YONO_OK;
}
uint32_t yono_image_task_count(const yono_image* image) {
  return IsOpen(image) ? image->task_count : 0u;
}

const char* yono_image_task_name(const yono_image* image, uint32_t task) {
  if (!IsOpen(image) || task >= image->task_count) return nullptr;
  const Task t = ReadTask(image->data, image->task_table, task);
  return reinterpret_cast<const char*>(image->data + t.name_offset);
}

uint32_t yono_image_model_size(const yono_image* image, uint32_t task) {
  if (!IsOpen(image) || task >= image->task_count) return 0;
  return ReadTask(image->data, image->task_table, task).model_size;
}

uint32_t yono_image_arena_size(const yono_image* image, uint32_t task) {
  if (!IsOpen(image) || task >= image->task_count) return 0;
  return ReadTask(image->data, image->task_table, task).arena_size;
}

uint32_t yono_image_model_crc32(const yono_image* image, uint32_t task) {
  if (!IsOpen(image) || task >= image->task_count) return 0;
  return ReadTask(image->data, image->task_table, task).model_crc32;
}

int32_t yono_image_find_task(const yono_image* image, const char* name) {
  if (!IsOpen(image) || name == nullptr) return -1;
  for (uint32_t i = 0; i < image->task_count; ++i) {
    const Task t = ReadTask(image->data, image->task_table, i);
    const char* n = reinterpret_cast<const char*>(image->data + t.name_offset);
    uint32_t j = 0;
    while (j < t.name_length && name[j] != '\0' && name[j] == n[j]) ++j;
    if (j == t.name_length && name[j] == '\0') return static_cast<int32_t>(i);
  }
  return -1;
}
}  // extern "C"
