// yonoc image reader: validates a yonoc flash image and rebuilds one model
// at a time into RAM, or (flash tasks) gives the model in place and decodes
// its coded weights one record at a time. Implements docs/image-format.md
// (format version 4).
//
// No heap, no exceptions, no RTTI. Every offset and length read from the
// image is bounds-checked before use. Image::Open() validates the whole image
// (header, CRC, tables, every fill record and every PQ index), so a Rebuild()
// of an opened image can only fail on its arguments (bad task, region too
// small or misaligned) and never part-way through.
//
// The header is usable from C: the C API (yono_image_*) works on a plain
// struct `yono_image` that a caller may place anywhere (static storage is
// typical). The C++ API (namespace yono) is a thin class over the same struct.
#ifndef YONO_IMAGE_H_
#define YONO_IMAGE_H_

#include <stdint.h>

#include "yono/image_format.h"  // generated layout constants (YONO_MODEL_ALIGNMENT, limits)

#ifdef __cplusplus
extern "C" {
#endif

// Status codes (stable numbers; the C++ enum yono::Status uses the same).
typedef int32_t yono_status;
#define YONO_OK 0
#define YONO_TOO_SMALL 1    // buffer < header size or < header image_size
#define YONO_BAD_MAGIC 2    // magic is not "YONO"
#define YONO_BAD_VERSION 3  // format_version != YONO_FORMAT_VERSION
#define YONO_BAD_HEADER \
  4                     // header_size, flags, task_count, max_*, notes fields
#define YONO_BAD_CRC 5  // CRC-32 of [16, image_size) mismatch
#define YONO_OUT_OF_BOUNDS \
  6  // a table or section (or the notes) lies outside the image
#define YONO_BAD_CODEBOOK 7  // s, K or data_size invalid
#define YONO_BAD_TASK 8      // name, skeleton_size, model_size or flags invalid
#define YONO_BAD_FILL_RECORD 9    // kind, layout, order/overlap, M, P, I ...
#define YONO_BAD_INDEX 10         // a PQ index >= K of its codebook
#define YONO_REGION_TOO_SMALL 11  // Rebuild: dst_size < model_size
#define YONO_NO_SUCH_TASK 12      // task index >= task_count
#define YONO_NOT_OPEN 13          // no image successfully opened
#define YONO_BAD_ALIGNMENT 14     // Rebuild: dst not 16-byte aligned
#define YONO_BAD_ARGUMENT 15      // null pointer argument

// Codeword caches. PQ decoding copies int8 codewords; the image stores them
// as binary16, so they are converted first. Fastest: attach a RAM cache once
// (yono_image_attach_codeword_cache, yono_image_codeword_cache_size() bytes,
// e.g. 8 KiB for 8 codebooks of K=256, s=4): all codebooks are converted once
// and no Rebuild() converts anything. Otherwise each Rebuild() converts the
// codebooks it meets into a workspace: YONO_STACK_CACHE_BYTES on the stack
// (4096 covers one record's M=2, K=256, s<=8), or a caller-provided one via
// yono_image_rebuild_ws(). Records whose codebooks do not fit are decoded
// correctly but more slowly.
#ifndef YONO_STACK_CACHE_BYTES
#define YONO_STACK_CACHE_BYTES 4096
#endif
// Largest workspace Rebuild can use: M sub-codebooks x K codewords x s, at
// their format limits (4 x 256 x 16).
#define YONO_MAX_WORKSPACE_BYTES \
  (YONO_MAX_SUBCODEBOOKS * YONO_MAX_CODEWORDS * YONO_MAX_SUBVECTOR_LEN)

// Rebuilt models must live in a region aligned to YONO_MODEL_ALIGNMENT
// (image_format.h; TFLM reads buffers in place).

typedef struct yono_image {
  const uint8_t* data;  // null until a successful open
  uint32_t size;        // image_size from the header
  uint32_t codebook_table;
  uint32_t task_table;
  uint16_t codebook_count;
  uint16_t task_count;
  uint32_t max_model_size;
  uint32_t max_arena_size;
  uint32_t cw_stride;  // bytes per codebook in an attached codeword cache
  int8_t* cw_cache;    // attached int8 codeword cache, or NULL
} yono_image;

// CRC-32 (IEEE 802.3 / zlib). `seed` is a previous return value to continue.
uint32_t yono_crc32(const uint8_t* data, uint32_t size, uint32_t seed);
const char* yono_status_string(yono_status status);
// binary16 -> int8 as the format specifies: round half away from zero,
// clamp to [-128, 127], NaN -> 0.
int8_t yono_half_to_int8(uint16_t half_bits);

// Validate `data[0, size)` and, on success, fill `image`. On failure `image`
// is left closed (image->data == NULL).
yono_status yono_image_open(yono_image* image, const uint8_t* data,
                            uint32_t size);
uint32_t yono_image_task_count(const yono_image* image);
// NUL-terminated name inside the image, or NULL for a bad index.
const char* yono_image_task_name(const yono_image* image, uint32_t task);
uint32_t yono_image_model_size(const yono_image* image, uint32_t task);
uint32_t yono_image_arena_size(const yono_image* image, uint32_t task);
uint32_t yono_image_model_crc32(const yono_image* image, uint32_t task);
// Task index of `name`, or -1.
int32_t yono_image_find_task(const yono_image* image, const char* name);
// Bytes needed to hold every codebook of the image as int8 (0 if not open).
uint32_t yono_image_codeword_cache_size(const yono_image* image);
// Converts every codebook into `cache` (any alignment) and makes Rebuild()
// use it; the cache must stay valid while the image is used. Returns
// YONO_REGION_TOO_SMALL (nothing attached) if size is too small. Passing
// cache == NULL detaches.
yono_status yono_image_attach_codeword_cache(yono_image* image, uint8_t* cache,
                                             uint32_t size);
// Rebuild task into dst (16-byte aligned, dst_size >= model_size). *written
// (optional) receives model_size on success and 0 otherwise.
//
// Stack use of one call (worst path from gcc -fcallgraph-info=su, libc
// memcpy/memset not included; the 1 KiB kernel-major transpose buffer and,
// without an attached cache, the YONO_STACK_CACHE_BYTES workspace dominate):
//                                  no cache attached   cache attached / _ws
//   Cortex-M7, arm-none-eabi-gcc 12.2 -O3 (tests/mcu/fw)  5752 B   1632 B / 1592 B
//   Cortex-M7, -O2                                       5700 B   1580 B / 1540 B
//   Cortex-M7, -Os                                       5664 B   1544 B / 1504 B
//   x86-64 host, gcc 12 -O3 (AVX-512 path, 2 KiB planes)  8592 B   4464 B / 4440 B
// Measured on Cortex-M7 under QEMU (tests/mcu/fw/mcu_test.cc checks these
// bounds): 4816 B / 736 B for the examples image, whose records are linear
// (kernel-major records add the 1 KiB transpose buffer).
// With YONO_STACK_CACHE_BYTES=0 the "no cache" column drops by 4 KiB (and
// decoding without a cache takes the slow per-codeword path). Open() needs
// about 250 B.
yono_status yono_image_rebuild(const yono_image* image, uint32_t task,
                               uint8_t* dst, uint32_t dst_size,
                               uint32_t* written);
// As above with a caller-provided codeword cache (any alignment; up to
// YONO_MAX_WORKSPACE_BYTES are used). workspace may be NULL.
yono_status yono_image_rebuild_ws(const yono_image* image, uint32_t task,
                                  uint8_t* dst, uint32_t dst_size,
                                  uint32_t* written, uint8_t* workspace,
                                  uint32_t workspace_size);

// Flash tasks (task flag YONO_TASK_FLAG_FLASH, docs/image-format.md "Flash
// tasks"): the model runs in place from the image. 1 for a flash task, 0
// otherwise (or bad index / not open).
int yono_image_task_is_flash(const yono_image* image, uint32_t task);
// A flash task's model (model_size bytes, 16-byte aligned when the image
// is): a pointer into the image. NULL for a rebuild task or a bad index.
const uint8_t* yono_image_flash_model(const yono_image* image, uint32_t task);

// Decode records: a flash model's YONO_DECODE operator carries a 24-byte
// fill record (kind PQ or PQ_RESIDUAL; dst_offset/src_offset ignored) and
// its index array, both outside the image's tables.
//
// Checks the record and `index_bytes` indices against the open image with
// every rule a PQ / PQ_RESIDUAL fill record gets at open time (kind,
// layout, M, codebooks, common s, every index < K: YONO_BAD_FILL_RECORD /
// YONO_BAD_INDEX) and that index_bytes is exactly the record's
// ceil(length/s) [+ ceil(length/s2)] (YONO_OUT_OF_BOUNDS otherwise).
// *length (optional) receives the decoded size in bytes on success, else 0.
yono_status yono_image_check_record(const yono_image* image,
                                    const uint8_t* record,
                                    const uint8_t* indices,
                                    uint32_t index_bytes, uint32_t* length);
// Decodes a record that yono_image_check_record accepted into dst[0,
// length) with Rebuild's decode paths and codeword caches (attached cache,
// else the YONO_STACK_CACHE_BYTES stack workspace). Only O(1) checks here
// (open, nulls, kind, dst_size >= length): the indices are not re-scanned.
// Stack: as Rebuild's; measured on Cortex-M7 (tests/mcu): 4760 B / 664 B
// (no cache / attached cache) on the examples image.
yono_status yono_image_decode_record(const yono_image* image,
                                     const uint8_t* record,
                                     const uint8_t* indices, int8_t* dst,
                                     uint32_t dst_size);
// As above with a caller-provided codeword workspace (may be NULL).
yono_status yono_image_decode_record_ws(const yono_image* image,
                                        const uint8_t* record,
                                        const uint8_t* indices, int8_t* dst,
                                        uint32_t dst_size, uint8_t* workspace,
                                        uint32_t workspace_size);

#ifdef __cplusplus
}  // extern "C"

namespace yono {

enum class Status : int32_t {
  kOk = YONO_OK,
  kTooSmall = YONO_TOO_SMALL,
  kBadMagic = YONO_BAD_MAGIC,
  kBadVersion = YONO_BAD_VERSION,
  kBadHeader = YONO_BAD_HEADER,
  kBadCrc = YONO_BAD_CRC,
  kOutOfBounds = YONO_OUT_OF_BOUNDS,
  kBadCodebook = YONO_BAD_CODEBOOK,
  kBadTask = YONO_BAD_TASK,
  kBadFillRecord = YONO_BAD_FILL_RECORD,
  kBadIndex = YONO_BAD_INDEX,
  kRegionTooSmall = YONO_REGION_TOO_SMALL,
  kNoSuchTask = YONO_NO_SUCH_TASK,
  kNotOpen = YONO_NOT_OPEN,
  kBadAlignment = YONO_BAD_ALIGNMENT,
  kBadArgument = YONO_BAD_ARGUMENT,
};

inline const char* StatusString(Status s) {
  return yono_status_string(static_cast<yono_status>(s));
}
inline uint32_t Crc32(const uint8_t* data, uint32_t size, uint32_t seed = 0) {
  return yono_crc32(data, size, seed);
}

class Image {
 public:
  Image() : s_{} {}

  Status Open(const uint8_t* data, uint32_t size) {
    return static_cast<Status>(yono_image_open(&s_, data, size));
  }
  bool is_open() const { return s_.data != nullptr; }
  const uint8_t* data() const { return s_.data; }
  uint32_t size() const { return s_.size; }

  uint32_t task_count() const { return yono_image_task_count(&s_); }
  const char* task_name(uint32_t task) const {
    return yono_image_task_name(&s_, task);
  }
  uint32_t model_size(uint32_t task) const {
    return yono_image_model_size(&s_, task);
  }
  uint32_t max_model_size() const { return s_.max_model_size; }
  uint32_t arena_size(uint32_t task) const {
    return yono_image_arena_size(&s_, task);
  }
  uint32_t max_arena_size() const { return s_.max_arena_size; }
  uint32_t model_crc32(uint32_t task) const {
    return yono_image_model_crc32(&s_, task);
  }
  int32_t find_task(const char* name) const {
    return yono_image_find_task(&s_, name);
  }

  Status Rebuild(uint32_t task, uint8_t* dst, uint32_t dst_size,
                 uint32_t* written = nullptr) const {
    return static_cast<Status>(
        yono_image_rebuild(&s_, task, dst, dst_size, written));
  }
  Status Rebuild(uint32_t task, uint8_t* dst, uint32_t dst_size,
                 uint32_t* written, uint8_t* workspace,
                 uint32_t workspace_size) const {
    return static_cast<Status>(yono_image_rebuild_ws(
        &s_, task, dst, dst_size, written, workspace, workspace_size));
  }

  bool is_flash(uint32_t task) const {
    return yono_image_task_is_flash(&s_, task) != 0;
  }
  // A flash task's in-place model (pointer into the image), else nullptr.
  const uint8_t* flash_model(uint32_t task) const {
    return yono_image_flash_model(&s_, task);
  }
  Status CheckRecord(const uint8_t* record, const uint8_t* indices,
                     uint32_t index_bytes, uint32_t* length = nullptr) const {
    return static_cast<Status>(
        yono_image_check_record(&s_, record, indices, index_bytes, length));
  }
  Status DecodeRecord(const uint8_t* record, const uint8_t* indices,
                      int8_t* dst, uint32_t dst_size) const {
    return static_cast<Status>(
        yono_image_decode_record(&s_, record, indices, dst, dst_size));
  }

  uint32_t codeword_cache_size() const {
    return yono_image_codeword_cache_size(&s_);
  }
  Status AttachCodewordCache(uint8_t* cache, uint32_t size) {
    return static_cast<Status>(
        yono_image_attach_codeword_cache(&s_, cache, size));
  }

  const yono_image* c_image() const { return &s_; }

 private:
  yono_image s_;
};

}  // namespace yono
#endif  // __cplusplus

#endif  // YONO_IMAGE_H_
