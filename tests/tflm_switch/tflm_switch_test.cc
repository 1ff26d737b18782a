// TFLM-linked test: switch through every task of a yonoc image with
// yono::TflmExecutor (one model region + one arena, sized from the generated
// header), run the stored test vectors and compare with the outputs of TFLM's
// Python interpreter (tests/tflm_switch/make_vectors.py). Two passes, the second in
// reverse task order, so every task is rebuilt after another one ran.
#include <stdio.h>
#include <string.h>

#include "tt_image.h"
#include "tt_ops.h"
#include "tt_vectors.h"
#include "yono/image.h"
#include "yono/tflm.h"

namespace {

alignas(16) uint8_t g_model_region[TT_MODEL_REGION_SIZE];
alignas(16) uint8_t g_arena[TT_TENSOR_ARENA_SIZE];
yono::Image g_image;
tt_op_resolver g_resolver;
yono::TflmExecutor g_executor;

int g_failures = 0;

#define CHECK(cond, ...)                                \
  do {                                                  \
    if (!(cond)) {                                      \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);       \
      printf(__VA_ARGS__);                              \
      printf("\n");                                     \
      ++g_failures;                                     \
    }                                                   \
  } while (0)

size_t ElementSize(TfLiteType t) {
  switch (t) {
    case kTfLiteFloat32: case kTfLiteInt32: case kTfLiteUInt32: return 4;
    case kTfLiteInt16: case kTfLiteUInt16: case kTfLiteFloat16: return 2;
    case kTfLiteInt64: case kTfLiteUInt64: case kTfLiteFloat64: return 8;
    default: return 1;
  }
}

// Exact comparison; float outputs may differ in the last bits only.
bool SameOutput(const yono::TensorView& out, const uint8_t* expected,
                double* max_abs_diff) {
  *max_abs_diff = 0;
  if (out.type == kTfLiteFloat32) {
    const float* a = out.as<float>();
    bool ok = true;
    for (size_t i = 0; i < out.bytes / 4; ++i) {
      float b;
      memcpy(&b, expected + 4 * i, 4);
      double d = a[i] > b ? a[i] - b : b - a[i];
      if (d > *max_abs_diff) *max_abs_diff = d;
      double tol = 1e-6 * (b < 0 ? -b : b) + 1e-7;
      if (d > tol) ok = false;
    }
    return ok;
  }
  const uint8_t* a = static_cast<const uint8_t*>(out.data);
  size_t differing = 0;
  for (size_t i = 0; i < out.bytes; ++i) differing += a[i] != expected[i];
  *max_abs_diff = static_cast<double>(differing);
  return differing == 0;
}

uint32_t RunPass(bool reverse, uint32_t* matched) {
  uint32_t checked = 0;
  for (uint32_t n = 0; n < TT_TASK_COUNT; ++n) {
    uint32_t task = reverse ? TT_TASK_COUNT - 1 - n : n;
    yono::TflmStatus st = g_executor.switch_to(task);
    CHECK(st == yono::TflmStatus::kOk, "switch_to(%s): %s (image: %s)",
          tt_tasks[task].name, yono::TflmStatusString(st),
          yono::StatusString(g_executor.image_status()));
    if (st != yono::TflmStatus::kOk) continue;
    const tt_task_desc& desc = tt_tasks[task];
    CHECK(g_executor.input_count() == desc.input_count, "%s input count",
          desc.name);
    CHECK(g_executor.output_count() == desc.output_count, "%s output count",
          desc.name);
    for (uint32_t k = 0; k < desc.input_count && k < g_executor.input_count();
         ++k) {
      yono::TensorView in = g_executor.input(k);
      CHECK(in.bytes == desc.inputs[k].bytes &&
                static_cast<int32_t>(in.type) == desc.inputs[k].type &&
                in.rank == desc.inputs[k].rank &&
                in.zero_point == desc.inputs[k].zero_point &&
                in.scale == desc.inputs[k].scale,
            "%s input %u does not match its generated description", desc.name,
            static_cast<unsigned>(k));
      for (int d = 0; d < in.rank && d < desc.inputs[k].rank; ++d) {
        CHECK(in.dims[d] == desc.inputs[k].dims[d], "%s input dim %d",
              desc.name, d);
      }
    }
    // yonoc's build-time measurement (TFLM Python interpreter) must cover
    // what this interpreter uses.
    CHECK(desc.arena_size == 0 || g_executor.arena_used_bytes() <= desc.arena_size,
          "%s uses %zu arena bytes, more than the %u yonoc measured", desc.name,
          g_executor.arena_used_bytes(), static_cast<unsigned>(desc.arena_size));
    if (!reverse) {
      printf("%-40s model %7u B  arena used %7zu B (measured by yonoc %7u B)\n",
             desc.name, static_cast<unsigned>(desc.model_size),
             g_executor.arena_used_bytes(),
             static_cast<unsigned>(desc.arena_size));
    }
    for (uint32_t v = 0; v < tt_vector_count; ++v) {
      const tt_vector& vec = tt_vectors[v];
      if (vec.task != task) continue;
      ++checked;
      CHECK(g_executor.reset() == yono::TflmStatus::kOk, "reset");
      size_t off = 0;
      for (size_t k = 0; k < g_executor.input_count(); ++k) {
        yono::TensorView in = g_executor.input(k);
        if (off + in.bytes <= vec.input_bytes) memcpy(in.data, vec.input + off, in.bytes);
        off += in.bytes;
      }
      CHECK(off == vec.input_bytes, "%s: vector input size %u != %zu", desc.name,
            static_cast<unsigned>(vec.input_bytes), off);
      st = g_executor.invoke();
      CHECK(st == yono::TflmStatus::kOk, "%s invoke: %s", desc.name,
            yono::TflmStatusString(st));
      off = 0;
      bool all_same = true;
      for (size_t k = 0; k < g_executor.output_count(); ++k) {
        yono::TensorView out = g_executor.output(k);
        double diff = 0;
        bool same = off + out.bytes <= vec.expected_bytes &&
                    out.bytes % ElementSize(out.type) == 0 &&
                    SameOutput(out, vec.expected + off, &diff);
        CHECK(same, "%s vector %u output %zu differs from TFLM Python (%g)",
              desc.name, static_cast<unsigned>(v), k, diff);
        all_same = all_same && same;
        off += out.bytes;
      }
      CHECK(off == vec.expected_bytes, "%s: expected size", desc.name);
      if (all_same) ++*matched;
    }
  }
  return checked;
}

}  // namespace

int main() {
  yono::Status s = g_image.Open(tt_image, tt_image_size);
  if (s != yono::Status::kOk) {
    printf("FAIL: Image::Open: %s\n", yono::StatusString(s));
    return 1;
  }
  CHECK(g_image.task_count() == TT_TASK_COUNT, "task count");
  CHECK(g_image.max_model_size() == TT_MODEL_REGION_SIZE, "model region");
  for (uint32_t t = 0; t < TT_TASK_COUNT && t < g_image.task_count(); ++t) {
    CHECK(strcmp(g_image.task_name(t), tt_tasks[t].name) == 0, "task name %u",
          static_cast<unsigned>(t));
  }
  if (tt_register_ops(g_resolver) != kTfLiteOk) {
    printf("FAIL: tt_register_ops\n");
    return 1;
  }
  yono::TflmStatus st = g_executor.Init(&g_image, &g_resolver, g_model_region,
                                        sizeof g_model_region, g_arena,
                                        sizeof g_arena);
  if (st != yono::TflmStatus::kOk) {
    printf("FAIL: Init: %s\n", yono::TflmStatusString(st));
    return 1;
  }
  // Errors: a task that does not exist, invoke without a task.
  CHECK(g_executor.invoke() == yono::TflmStatus::kNoTask, "invoke w/o task");
  CHECK(g_executor.switch_to(TT_TASK_COUNT) == yono::TflmStatus::kImageError &&
            g_executor.image_status() == yono::Status::kNoSuchTask,
        "switch_to(out of range)");
  CHECK(g_executor.switch_to("no such task") == yono::TflmStatus::kImageError,
        "switch_to(unknown name)");
  CHECK(g_executor.current_task() == -1, "no current task after failure");

  uint32_t matched = 0;
  uint32_t checked = RunPass(false, &matched);
  checked += RunPass(true, &matched);
  // Each task's own recorded arena_size is enough on the first try, and one
  // byte less is refused by the executor before TFLM sees the arena.
  // These executors rebuild into the same model region: release g_executor's
  // interpreter first (Init does), as it reads its model when destroyed.
  CHECK(g_executor.Init(&g_image, &g_resolver, g_model_region,
                        sizeof g_model_region, g_arena, sizeof g_arena) ==
                yono::TflmStatus::kOk &&
            g_executor.current_task() == -1,
        "re-Init releases the current task");
  uint32_t refused = 0, exact_ok = 0;
  for (uint32_t t = 0; t < TT_TASK_COUNT; ++t) {
    size_t need = g_image.arena_size(t);
    if (need == 0 || need > sizeof g_arena) continue;
    yono::TflmExecutor exact;
    CHECK(exact.Init(&g_image, &g_resolver, g_model_region,
                     sizeof g_model_region, g_arena, need) ==
              yono::TflmStatus::kOk,
          "Init(exact arena)");
    st = exact.switch_to(t);
    CHECK(st == yono::TflmStatus::kOk, "%s with its own arena_size %zu: %s",
          tt_tasks[t].name, need, yono::TflmStatusString(st));
    exact_ok += st == yono::TflmStatus::kOk;
    yono::TflmExecutor tight;
    CHECK(tight.Init(&g_image, &g_resolver, g_model_region,
                     sizeof g_model_region, g_arena, need - 1) ==
              yono::TflmStatus::kOk,
          "Init(small arena)");
    st = tight.switch_to(t);
    CHECK(st == yono::TflmStatus::kArenaTooSmall && tight.current_task() == -1,
          "%s with arena_size - 1: %s", tt_tasks[t].name,
          yono::TflmStatusString(st));
    refused += st == yono::TflmStatus::kArenaTooSmall;
  }
  printf("%u of %u tasks ran with exactly their arena_size; %u refused at "
         "arena_size - 1\n", static_cast<unsigned>(exact_ok),
         static_cast<unsigned>(TT_TASK_COUNT), static_cast<unsigned>(refused));
  // Switching by name lands on the same index.
  CHECK(g_executor.switch_to(tt_tasks[0].name) == yono::TflmStatus::kOk &&
            g_executor.current_task() == 0,
        "switch_to(name)");
  printf("%u tasks, %u of %u vector runs match TFLM Python outputs; "
         "arena %u B, model region %u B\n",
         static_cast<unsigned>(TT_TASK_COUNT), static_cast<unsigned>(matched),
         static_cast<unsigned>(checked),
         static_cast<unsigned>(TT_TENSOR_ARENA_SIZE),
         static_cast<unsigned>(TT_MODEL_REGION_SIZE));
  if (checked == 0) {
    printf("FAIL: no vectors\n");
    return 1;
  }
  if (g_failures) {
    printf("FAILED (%d)\n", g_failures);
    return 1;
  }
  printf("PASSED\n");
  return 0;
}
