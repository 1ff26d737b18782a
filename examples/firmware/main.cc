// Example firmware main: switch through every task of the image, run each on
// an input whose real value is zero (the input zero point) and print the
// outputs. One model region and one tensor arena serve all tasks; the
// codeword cache (every codebook converted to int8 once, at start-up) makes a
// switch faster and keeps the 4 KiB conversion buffer off the stack
// (docs/runtime.md, "Stack use of a switch").
//
// On an MCU: printf goes wherever your retargeting sends it, and the two
// buffers below can be placed in a specific SRAM with a section attribute.
#include <stdio.h>
#include <string.h>

#include "app_image.h"  // generated: tasks, sizes, I/O descriptions
#include "app_ops.h"    // generated: op resolver with exactly the ops used
#include "yono/image.h"
#include "yono/tflm.h"

namespace {

alignas(16) uint8_t g_model_region[APP_MODEL_REGION_SIZE];
alignas(16) uint8_t g_arena[APP_TENSOR_ARENA_SIZE];
// APP_CODEWORD_CACHE_SIZE is yono_image_codeword_cache_size() of this image
// (0 when it has no PQ codebooks; an array cannot be empty).
uint8_t g_codeword_cache[APP_CODEWORD_CACHE_SIZE > 0 ? APP_CODEWORD_CACHE_SIZE : 1];
yono::Image g_image;
app_op_resolver g_resolver;
yono::TflmExecutor g_executor;

// An input whose real value is 0: the zero point for quantised tensors.
void FillZero(const yono::TensorView& t) {
  if (t.type == kTfLiteInt8) {
    memset(t.data, static_cast<int8_t>(t.zero_point), t.bytes);
  } else if (t.type == kTfLiteUInt8) {
    memset(t.data, static_cast<uint8_t>(t.zero_point), t.bytes);
  } else if (t.type == kTfLiteInt16) {
    int16_t* p = t.as<int16_t>();
    for (size_t i = 0; i < t.bytes / 2; ++i) p[i] = static_cast<int16_t>(t.zero_point);
  } else {
    memset(t.data, 0, t.bytes);  // float 0.0, integer 0
  }
}

void PrintOutput(const yono::TensorView& t) {
  const size_t max_shown = 16;
  if (t.type == kTfLiteInt8 || t.type == kTfLiteUInt8 || t.type == kTfLiteInt16) {
    size_t n = t.type == kTfLiteInt16 ? t.bytes / 2 : t.bytes;
    for (size_t i = 0; i < n && i < max_shown; ++i) {
      int32_t q = t.type == kTfLiteInt8    ? t.as<int8_t>()[i]
                  : t.type == kTfLiteUInt8 ? t.as<uint8_t>()[i]
                                           : t.as<int16_t>()[i];
      printf(" %ld(%.4f)", static_cast<long>(q),
             static_cast<double>(t.scale) * (q - t.zero_point));
    }
    if (n > max_shown) printf(" ... (%zu values)", n);
  } else if (t.type == kTfLiteFloat32) {
    size_t n = t.bytes / 4;
    for (size_t i = 0; i < n && i < max_shown; ++i) {
      printf(" %.4f", static_cast<double>(t.as<float>()[i]));
    }
    if (n > max_shown) printf(" ... (%zu values)", n);
  } else {
    printf(" (%zu bytes of type %d)", t.bytes, static_cast<int>(t.type));
  }
  printf("\n");
}

}  // namespace

int main() {
  yono::Status s = g_image.Open(app_image, app_image_size);
  if (s != yono::Status::kOk) {
    printf("image: %s\n", yono::StatusString(s));
    return 1;
  }
  // Attach before Init: the executor rebuilds through g_image.
  if (g_image.codeword_cache_size() > 0) {
    s = g_image.AttachCodewordCache(g_codeword_cache, sizeof g_codeword_cache);
    if (s != yono::Status::kOk) {
      printf("codeword cache: %s\n", yono::StatusString(s));
      return 1;
    }
  }
  if (app_register_ops(g_resolver) != kTfLiteOk) {
    printf("op resolver: registration failed\n");
    return 1;
  }
  yono::TflmStatus st = g_executor.Init(&g_image, &g_resolver, g_model_region,
                                        sizeof g_model_region, g_arena, sizeof g_arena);
  if (st != yono::TflmStatus::kOk) {
    printf("executor: %s\n", yono::TflmStatusString(st));
    return 1;
  }
  printf("yono image: %u bytes, %u tasks; model region %u B, tensor arena %u B, "
         "codeword cache %u B\n",
         static_cast<unsigned>(app_image_size), static_cast<unsigned>(APP_TASK_COUNT),
         static_cast<unsigned>(sizeof g_model_region), static_cast<unsigned>(sizeof g_arena),
         static_cast<unsigned>(g_image.codeword_cache_size()));

  int failures = 0;
  for (uint32_t task = 0; task < APP_TASK_COUNT; ++task) {
    st = g_executor.switch_to(task);
    if (st != yono::TflmStatus::kOk) {
      printf("%s: switch failed: %s (%s)\n", app_tasks[task].name,
             yono::TflmStatusString(st), yono::StatusString(g_executor.image_status()));
      ++failures;
      continue;
    }
    for (size_t i = 0; i < g_executor.input_count(); ++i) FillZero(g_executor.input(i));
    st = g_executor.invoke();
    if (st != yono::TflmStatus::kOk) {
      printf("%s: invoke failed: %s\n", app_tasks[task].name, yono::TflmStatusString(st));
      ++failures;
      continue;
    }
    printf("%s (model %u B, arena used %zu B):\n", app_tasks[task].name,
           static_cast<unsigned>(app_tasks[task].model_size), g_executor.arena_used_bytes());
    for (size_t i = 0; i < g_executor.output_count(); ++i) {
      printf("  output %zu:", i);
      PrintOutput(g_executor.output(i));
    }
  }
  return failures ? 1 : 0;
}
