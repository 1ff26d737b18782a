// yono_flash_task_test: format-v4 flash tasks and decode records on a small
// image built here byte by byte (no yonoc needed): a rebuild task with one
// PQ record over a K = 4 codebook and a flash task larger than
// max_model_size. Checks the accessors (is_flash, flash_model in place),
// that the flash task rebuilds to its stored bytes, the v4 task rules
// (unknown flag bits, a flash task with fill records / misaligned /
// skeleton != model, rule 5 for rebuild tasks only), and a decode record's
// index >= K, which the yonoc-built test images cannot show (their
// codebooks all have K = 256).
#include <cstdio>
#include <cstring>
#include <vector>

#include "yono/image.h"
#include "yono/image_format.h"

using yono::Status;

namespace {

int g_failures = 0;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL: %s\n", what);
    ++g_failures;
  }
}
void Put16(std::vector<uint8_t>* b, size_t at, uint32_t v) {
  (*b)[at] = static_cast<uint8_t>(v);
  (*b)[at + 1] = static_cast<uint8_t>(v >> 8);
}
void Put32(std::vector<uint8_t>* b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    (*b)[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}
// Small integers as exact binary16.
uint16_t IntToHalf(int v) {
  if (v == 0) return 0;
  const uint32_t sign = v < 0 ? 0x8000u : 0u;
  uint32_t mag = static_cast<uint32_t>(v < 0 ? -v : v);
  uint32_t e = 0;
  while ((mag >> (e + 1)) != 0) ++e;
  return static_cast<uint16_t>(sign | ((e + 15u) << 10) |
                               (((mag << 10) >> e) & 0x3FFu));
}

constexpr uint32_t kS = 2, kK = 4,
                   kLength = 7;  // 4 indices, the last sub-vector partial
constexpr uint32_t kCbTable = 64, kTaskTable = 80, kNames = 208, kCbData = 224;
constexpr uint32_t kFills = 240, kIndices = 264, kFlash = 272, kFlashSize = 32;
constexpr uint32_t kImageSize = kFlash + kFlashSize;
const uint8_t kIdx[4] = {0, 3, 1, 2};

int Codeword(uint32_t k, uint32_t t) {
  return static_cast<int>(k * 10 + t) - 20;
}

void Seal(std::vector<uint8_t>* b) {
  Put32(b, YONO_HEADER_CRC32_OFF,
        yono::Crc32(b->data() + YONO_CRC_START, kImageSize - YONO_CRC_START));
}

std::vector<uint8_t> MakeImage() {
  std::vector<uint8_t> b(kImageSize, 0);
  std::memcpy(b.data(), YONO_MAGIC, YONO_MAGIC_SIZE);
  Put16(&b, YONO_HEADER_FORMAT_VERSION_OFF, YONO_FORMAT_VERSION);
  Put16(&b, YONO_HEADER_HEADER_SIZE_OFF, YONO_HEADER_SIZE);
  Put32(&b, YONO_HEADER_IMAGE_SIZE_OFF, kImageSize);
  Put16(&b, YONO_HEADER_CODEBOOK_COUNT_OFF, 1);
  Put16(&b, YONO_HEADER_TASK_COUNT_OFF, 2);
  Put32(&b, YONO_HEADER_CODEBOOK_TABLE_OFFSET_OFF, kCbTable);
  Put32(&b, YONO_HEADER_TASK_TABLE_OFFSET_OFF, kTaskTable);
  Put32(&b, YONO_HEADER_MAX_MODEL_SIZE_OFF, kLength);  // the rebuild task only
  b[kCbTable + YONO_CODEBOOK_SUBVECTOR_LEN_OFF] = kS;
  Put16(&b, kCbTable + YONO_CODEBOOK_CODEWORD_COUNT_OFF, kK);
  Put32(&b, kCbTable + YONO_CODEBOOK_DATA_OFFSET_OFF, kCbData);
  Put32(&b, kCbTable + YONO_CODEBOOK_DATA_SIZE_OFF, kK * kS * 2);
  for (uint32_t k = 0; k < kK; ++k)
    for (uint32_t t = 0; t < kS; ++t)
      Put16(&b, kCbData + 2 * (k * kS + t), IntToHalf(Codeword(k, t)));
  b[kNames] = 'r';
  b[kNames + 2] = 'f';
  // Task 0 "r": rebuild, one PQ record covering the whole model.
  size_t e = kTaskTable;
  Put32(&b, e + YONO_TASK_NAME_OFFSET_OFF, kNames);
  Put32(&b, e + YONO_TASK_NAME_LENGTH_OFF, 1);
  Put32(&b, e + YONO_TASK_MODEL_SIZE_OFF, kLength);
  Put32(&b, e + YONO_TASK_SKELETON_OFFSET_OFF, kFills);
  Put32(&b, e + YONO_TASK_FILL_TABLE_OFFSET_OFF, kFills);
  Put32(&b, e + YONO_TASK_FILL_COUNT_OFF, 1);
  Put32(&b, kFills + YONO_FILL_LENGTH_OFF, kLength);
  b[kFills + YONO_FILL_KIND_OFF] = YONO_FILL_KIND_PQ;
  b[kFills + YONO_FILL_CODEBOOK_COUNT_OFF] = 1;
  Put32(&b, kFills + YONO_FILL_SRC_OFFSET_OFF, kIndices);
  std::memcpy(b.data() + kIndices, kIdx, sizeof kIdx);
  // Task 1 "f": flash, stored whole, larger than max_model_size.
  e = kTaskTable + YONO_TASK_ENTRY_SIZE;
  Put32(&b, e + YONO_TASK_NAME_OFFSET_OFF, kNames + 2);
  Put32(&b, e + YONO_TASK_NAME_LENGTH_OFF, 1);
  Put32(&b, e + YONO_TASK_MODEL_SIZE_OFF, kFlashSize);
  Put32(&b, e + YONO_TASK_SKELETON_OFFSET_OFF, kFlash);
  Put32(&b, e + YONO_TASK_SKELETON_SIZE_OFF, kFlashSize);
  Put32(&b, e + YONO_TASK_FLAGS_OFF, YONO_TASK_FLAG_FLASH);
  for (uint32_t i = 0; i < kFlashSize; ++i)
    b[kFlash + i] = static_cast<uint8_t>(0x40 + i);
  Put32(&b, e + YONO_TASK_MODEL_CRC32_OFF,
        yono::Crc32(b.data() + kFlash, kFlashSize));
  Seal(&b);
  return b;
}

Status OpenMutated(size_t task_entry_field, uint32_t value, int task) {
  std::vector<uint8_t> b = MakeImage();
  Put32(&b,
        kTaskTable + YONO_TASK_ENTRY_SIZE * static_cast<uint32_t>(task) +
            task_entry_field,
        value);
  Seal(&b);
  yono::Image im;
  return im.Open(b.data(), static_cast<uint32_t>(b.size()));
}

}  // namespace

int main() {
  alignas(16) static uint8_t storage[kImageSize];
  const std::vector<uint8_t> made = MakeImage();
  std::memcpy(storage, made.data(), kImageSize);
  yono::Image im;
  Check(im.Open(storage, kImageSize) == Status::kOk,
        "open the v4 image with a flash task");
  Check(!im.is_flash(0) && im.is_flash(1) && !im.is_flash(2), "is_flash");
  Check(im.flash_model(0) == nullptr && im.flash_model(1) == storage + kFlash &&
            im.flash_model(2) == nullptr,
        "flash_model points into the image");
  alignas(16) static uint8_t region[64];
  uint32_t written = 0;
  Check(im.Rebuild(1, region, kFlashSize, &written) == Status::kOk &&
            written == kFlashSize &&
            std::memcmp(region, storage + kFlash, kFlashSize) == 0,
        "a flash task rebuilds to its stored bytes");
  Check(im.Rebuild(0, region, sizeof region, &written) == Status::kOk,
        "rebuild the PQ task");
  for (uint32_t e = 0; e < kLength; ++e)
    Check(static_cast<int8_t>(region[e]) == Codeword(kIdx[e / kS], e % kS),
          "PQ rebuild bytes");

  // The rebuild task's record as a decode record.
  uint8_t rec[YONO_FILL_RECORD_SIZE];
  std::memcpy(rec, storage + kFills, sizeof rec);
  rec[YONO_FILL_SRC_OFFSET_OFF] = 0;
  rec[YONO_FILL_SRC_OFFSET_OFF + 1] = 0;
  rec[YONO_FILL_SRC_OFFSET_OFF + 2] = 0;
  rec[YONO_FILL_SRC_OFFSET_OFF + 3] = 0;
  uint8_t idx[4];
  std::memcpy(idx, kIdx, 4);
  uint32_t length = 0;
  Check(
      im.CheckRecord(rec, idx, 4, &length) == Status::kOk && length == kLength,
      "check_record");
  int8_t out[kLength];
  Check(im.DecodeRecord(rec, idx, out, kLength) == Status::kOk &&
            std::memcmp(out, region, kLength) == 0,
        "decode_record == rebuild");
  idx[2] = kK - 1;
  Check(im.CheckRecord(rec, idx, 4, nullptr) == Status::kOk,
        "index K - 1 accepted");
  idx[2] = kK;
  Check(
      im.CheckRecord(rec, idx, 4, &length) == Status::kBadIndex && length == 0,
      "index == K refused");
  idx[2] = 255;
  Check(im.CheckRecord(rec, idx, 4, nullptr) == Status::kBadIndex,
        "index 255 refused");
  Check(im.CheckRecord(rec, idx, 3, nullptr) == Status::kOutOfBounds,
        "3 of 4 indices refused");
  Check(im.CheckRecord(nullptr, idx, 4, nullptr) == Status::kBadArgument,
        "null record");
  yono::Image closed;
  Check(closed.CheckRecord(rec, idx, 4, nullptr) == Status::kNotOpen,
        "closed image");

  // v4 task rules.
  Check(OpenMutated(YONO_TASK_FLAGS_OFF, 2, 1) == Status::kBadTask,
        "unknown task flag bit");
  Check(OpenMutated(YONO_TASK_FLAGS_OFF, 0x80000001u, 1) == Status::kBadTask,
        "flag bit 31");
  Check(OpenMutated(YONO_TASK_FLAGS_OFF, YONO_TASK_FLAG_FLASH, 0) ==
            Status::kBadTask,
        "flash flag on a task with fill records");
  Check(OpenMutated(YONO_TASK_FLAGS_OFF, 0, 1) == Status::kBadHeader,
        "the large task as a rebuild task breaks rule 5");
  Check(OpenMutated(YONO_TASK_SKELETON_OFFSET_OFF, kFlash - 8, 1) ==
            Status::kBadTask,
        "flash model not 16-aligned");
  Check(OpenMutated(YONO_TASK_SKELETON_SIZE_OFF, kFlashSize - 16, 1) ==
            Status::kBadTask,
        "flash skeleton != model_size");
  Check(OpenMutated(YONO_TASK_FILL_TABLE_OFFSET_OFF, kFills, 1) ==
            Status::kBadTask,
        "flash task with a fill table offset");
  std::printf(g_failures == 0 ? "PASS\n" : "FAIL (%d)\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
