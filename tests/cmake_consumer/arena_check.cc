// Consumer of yono::tflm built against the stand-in TFLM (fake_tflm/), with
// the same warning flags as tests/tflm_switch. It compiling at all is half
// the test (SYSTEM includes, propagated layout define); running it checks
// that TflmExecutor::switch_to refuses an arena smaller than the task's
// recorded arena_size before TFLM is constructed, and accepts exactly it.
//
// The image is written here by hand (one task, no codebooks, the model is its
// 16-byte skeleton), so the test needs neither yonoc nor real TFLM.
#include <stdio.h>
#include <string.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "yono/image.h"
#include "yono/tflm.h"

namespace {

int g_failures = 0;

#define CHECK(cond, what)                                         \
  do {                                                            \
    if (!(cond)) {                                                \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, what);       \
      ++g_failures;                                               \
    }                                                             \
  } while (0)

constexpr uint32_t kArena = 1000;  // the task's recorded arena_size
constexpr uint32_t kImageSize = 160;
alignas(16) uint8_t g_image_bytes[kImageSize];
alignas(16) uint8_t g_region[64];
alignas(16) uint8_t g_arena[2 * kArena];

void Put16(uint32_t off, uint32_t v) {
  g_image_bytes[off] = static_cast<uint8_t>(v);
  g_image_bytes[off + 1] = static_cast<uint8_t>(v >> 8);
}
void Put32(uint32_t off, uint32_t v) {
  for (uint32_t i = 0; i < 4; ++i)
    g_image_bytes[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

// docs/image-format.md: header at 0, empty codebook table, one task entry at
// 64, its name at 128, its skeleton (the whole model) at 144.
void WriteImage(uint16_t version) {
  memset(g_image_bytes, 0, sizeof g_image_bytes);
  memcpy(g_image_bytes, "YONO", 4);
  Put16(4, version);
  Put16(6, 64);
  Put32(8, kImageSize);
  Put16(20, 0);   // codebook_count
  Put16(22, 1);   // task_count
  Put32(24, 64);  // codebook_table_offset
  Put32(28, 64);  // task_table_offset
  Put32(32, 16);  // max_model_size
  Put32(36, kArena);
  const uint32_t task = 64;
  Put32(task + 0, 128);  // name_offset
  Put32(task + 4, 1);    // name_length
  Put32(task + 8, 16);   // model_size
  Put32(task + 16, 144); // skeleton_offset
  Put32(task + 20, 16);  // skeleton_size
  Put32(task + 24, 144); // fill_table_offset (no records)
  Put32(task + 32, kArena);
  Put32(task + 40, 16);  // original_size
  g_image_bytes[128] = 't';
  Put32(144, TFLITE_SCHEMA_VERSION);  // the stand-in "model": its version
  Put32(task + 12, yono::Crc32(g_image_bytes + 144, 16));
  Put32(12, yono::Crc32(g_image_bytes + 16, kImageSize - 16));
}

}  // namespace

int main() {
  // The reader accepts exactly its own format version: find it.
  yono::Image image;
  yono::Status s = yono::Status::kBadVersion;
  for (uint16_t v = 1; v < 16 && s == yono::Status::kBadVersion; ++v) {
    WriteImage(v);
    s = image.Open(g_image_bytes, kImageSize);
  }
  if (s != yono::Status::kOk) {
    printf("FAIL: hand-written image refused: %s\n", yono::StatusString(s));
    return 1;
  }
  CHECK(image.arena_size(0) == kArena, "arena_size(0)");

  tflite::MicroOpResolver resolver;
  yono::TflmExecutor small;
  CHECK(small.Init(&image, &resolver, g_region, sizeof g_region, g_arena,
                   kArena - 1) == yono::TflmStatus::kOk,
        "Init(arena_size - 1)");
  CHECK(small.switch_to(0u) == yono::TflmStatus::kArenaTooSmall,
        "switch_to with arena_size - 1 is kArenaTooSmall");
  CHECK(small.current_task() == -1, "no current task after the refusal");
  CHECK(yono_fake_tflm_constructed == 0, "TFLM never constructed when refused");
  CHECK(strstr(yono::TflmStatusString(yono::TflmStatus::kArenaTooSmall),
               "arena") != nullptr,
        "status string names the arena");

  yono::TflmExecutor exact;
  CHECK(exact.Init(&image, &resolver, g_region, sizeof g_region, g_arena,
                   kArena) == yono::TflmStatus::kOk,
        "Init(arena_size)");
  CHECK(exact.switch_to("t") == yono::TflmStatus::kOk,
        "switch_to with exactly arena_size");
  CHECK(yono_fake_tflm_constructed == 1 &&
            yono_fake_tflm_last_arena_size == kArena,
        "TFLM got the whole arena");
  CHECK(exact.invoke() == yono::TflmStatus::kOk && exact.input(0).bytes == 4,
        "invoke + input view");
  CHECK(exact.switch_to(1u) == yono::TflmStatus::kImageError &&
            exact.image_status() == yono::Status::kNoSuchTask,
        "a bad task index is still kNoSuchTask, not an arena refusal");

  if (g_failures != 0) {
    printf("FAILED (%d)\n", g_failures);
    return 1;
  }
  printf("PASSED: plain TFLM target, -Werror consumer; arena refusal at %u B, "
         "accepted at %u B\n", static_cast<unsigned>(kArena - 1),
         static_cast<unsigned>(kArena));
  return 0;
}
