// TFLM-linked test of flash tasks (issue 14): the same models built twice,
// `--execute rebuild` (prefix rb) and `--execute flash` (prefix fl), run
// through two yono::TflmExecutors on the same deterministic inputs. Every
// task's outputs must be bit-exact between the modes, whatever the
// switching order: forward (rebuild then flash), reverse (flash first) and
// interleaved (tasks from both ends, modes alternating which goes first),
// each run compared with the first forward run. Also: the flash executor
// needs no model region when every task is flash, a flash model without
// the image in the external context fails at AllocateTensors, and a flash
// task switches with exactly its arena_size (tflm_switch checks the
// refusal one byte below for every task).
//
// `flash_switch_test --bench N` prints instead, per task, the median Invoke
// time of N runs in each mode (the decode overhead per inference).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <new>
#include <vector>

#include "fl_image.h"
#include "fl_ops.h"
#include "rb_image.h"
#include "rb_ops.h"
#include "yono/image.h"
#include "yono/tflm.h"

namespace {

#if FL_MODEL_REGION_SIZE > 0
alignas(16) uint8_t g_fl_region[FL_MODEL_REGION_SIZE];
#define FL_REGION g_fl_region
#else
#define FL_REGION nullptr  // every task runs in place
#endif
alignas(16) uint8_t g_rb_region[RB_MODEL_REGION_SIZE];
alignas(16) uint8_t g_fl_arena[FL_TENSOR_ARENA_SIZE];
alignas(16) uint8_t g_rb_arena[RB_TENSOR_ARENA_SIZE];
yono::Image g_fl_image, g_rb_image;
fl_op_resolver g_fl_resolver;
rb_op_resolver g_rb_resolver;
yono::TflmExecutor g_fl, g_rb;

int g_failures = 0;

#define CHECK(cond, ...)                          \
  do {                                            \
    if (!(cond)) {                                \
      printf("FAIL %s:%d: ", __FILE__, __LINE__); \
      printf(__VA_ARGS__);                        \
      printf("\n");                               \
      ++g_failures;                               \
    }                                             \
  } while (0)

uint32_t g_rand = 0x12345678u;
uint32_t Rand() {
  g_rand ^= g_rand << 13;
  g_rand ^= g_rand >> 17;
  g_rand ^= g_rand << 5;
  return g_rand;
}

// Deterministic inputs per task: float32 in [-1, 1), other types random bytes.
std::vector<std::vector<uint8_t>> g_inputs[FL_TASK_COUNT];
void MakeInputs(uint32_t task, const yono::TflmExecutor& ex) {
  g_rand = 0x9E3779B9u ^ (task * 2654435761u);
  for (size_t i = 0; i < ex.input_count(); ++i) {
    const yono::TensorView v = ex.input(i);
    std::vector<uint8_t> b(v.bytes);
    if (v.type == kTfLiteFloat32) {
      for (size_t e = 0; e + 4 <= b.size(); e += 4) {
        const float f = static_cast<float>(Rand() % 2000u) / 1000.0f - 1.0f;
        memcpy(&b[e], &f, 4);
      }
    } else {
      for (uint8_t& x : b) x = static_cast<uint8_t>(Rand());
    }
    g_inputs[task].push_back(b);
  }
}

// Switch `ex` to `task`, run it on the task's inputs, return its outputs.
bool Run(yono::TflmExecutor& ex, const char* mode, uint32_t task,
         std::vector<std::vector<uint8_t>>* outputs) {
  const yono::TflmStatus st = ex.switch_to(task);
  CHECK(st == yono::TflmStatus::kOk, "%s switch_to(%s): %s (image: %s)", mode,
        fl_tasks[task].name, yono::TflmStatusString(st),
        yono::StatusString(ex.image_status()));
  if (st != yono::TflmStatus::kOk) return false;
  if (g_inputs[task].empty()) MakeInputs(task, ex);
  CHECK(ex.input_count() == g_inputs[task].size(), "%s input count", mode);
  for (size_t i = 0; i < ex.input_count() && i < g_inputs[task].size(); ++i) {
    const yono::TensorView v = ex.input(i);
    if (v.bytes != g_inputs[task][i].size()) return false;
    memcpy(v.data, g_inputs[task][i].data(), v.bytes);
  }
  if (ex.invoke() != yono::TflmStatus::kOk) {
    CHECK(false, "%s invoke(%s)", mode, fl_tasks[task].name);
    return false;
  }
  outputs->clear();
  for (size_t o = 0; o < ex.output_count(); ++o) {
    const yono::TensorView v = ex.output(o);
    const uint8_t* p = static_cast<const uint8_t*>(v.data);
    outputs->emplace_back(p, p + v.bytes);
  }
  return true;
}

std::vector<std::vector<uint8_t>> g_ref[FL_TASK_COUNT];
uint32_t g_compared = 0;

void RunAndCompare(yono::TflmExecutor& ex, const char* mode, uint32_t task,
                   const char* order) {
  std::vector<std::vector<uint8_t>> out;
  if (!Run(ex, mode, task, &out)) return;
  if (g_ref[task].empty()) {
    g_ref[task] = out;
    return;
  }
  CHECK(out == g_ref[task], "%s: %s outputs differ from the reference (%s)",
        fl_tasks[task].name, mode, order);
  ++g_compared;
}

// Images whose data pointer is the generated array: 16-aligned by the
// generator.
bool OpenBoth() {
  CHECK(g_fl_image.Open(fl_image, fl_image_size) == yono::Status::kOk,
        "open flash image");
  CHECK(g_rb_image.Open(rb_image, rb_image_size) == yono::Status::kOk,
        "open rebuild image");
  if (g_failures) return false;
  CHECK(FL_TASK_COUNT == RB_TASK_COUNT, "task counts differ");
  for (uint32_t t = 0; t < FL_TASK_COUNT; ++t) {
    CHECK(strcmp(fl_tasks[t].name, rb_tasks[t].name) == 0, "task %u name", t);
    CHECK(!g_rb_image.is_flash(t), "%s is flash in the rebuild image",
          rb_tasks[t].name);
  }
  return g_failures == 0;
}

// The flash model's YONO_DECODE operators decoded back to back outside
// TFLM (best of `runs`): the decode work of one inference, in us, and the
// bytes it decodes.
double DecodeOnly(uint32_t t, int runs, uint32_t* decoded) {
  const tflite::Model* model = tflite::GetModel(g_fl_image.flash_model(t));
  const auto* sg = model->subgraphs()->Get(0);
  struct Op {
    const uint8_t* idx;
    const uint8_t* rec;
    uint32_t length;
  };
  std::vector<Op> ops;
  *decoded = 0;
  for (const auto* op : *sg->operators()) {
    const auto* code = model->operator_codes()->Get(op->opcode_index());
    if (code->custom_code() == nullptr ||
        strcmp(code->custom_code()->c_str(), YONO_DECODE_CUSTOM_CODE) != 0)
      continue;
    const auto* in = op->inputs();
    const auto* bi = model->buffers()->Get(
        sg->tensors()->Get(static_cast<uint32_t>(in->Get(0)))->buffer());
    const auto* br = model->buffers()->Get(
        sg->tensors()->Get(static_cast<uint32_t>(in->Get(1)))->buffer());
    Op o{bi->data()->data(), br->data()->data(), 0};
    if (g_fl_image.CheckRecord(o.rec, o.idx, bi->data()->size(), &o.length) !=
        yono::Status::kOk)
      return -1;
    *decoded += o.length;
    ops.push_back(o);
  }
  std::vector<int8_t> out(*decoded + 1);
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (const Op& o : ops)
      g_fl_image.DecodeRecord(o.rec, o.idx, out.data(), o.length);
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best,
                    std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  return best;
}

// Median Invoke time per mode, the two modes' runs interleaved (both
// executors stay on the task) so load on the machine hits both alike; and
// the decode work alone (DecodeOnly), which load disturbs far less.
int Bench(int runs) {
  printf("%-44s %10s %10s %10s %9s %9s %10s %9s\n", "task", "rebuild_us",
         "flash_us", "diff_us", "diff", "decoded_B", "decode_us", "decode");
  for (uint32_t t = 0; t < FL_TASK_COUNT; ++t) {
    std::vector<std::vector<uint8_t>> out;
    if (!Run(g_rb, "rebuild", t, &out) || !Run(g_fl, "flash", t, &out))
      return 1;
    std::vector<double> us[2];
    yono::TflmExecutor* ex[2] = {&g_rb, &g_fl};
    for (int r = 0; r < runs; ++r) {
      for (int m = 0; m < 2; ++m) {
        const auto t0 = std::chrono::steady_clock::now();
        ex[m]->invoke();
        const auto t1 = std::chrono::steady_clock::now();
        us[m].push_back(
            std::chrono::duration<double, std::micro>(t1 - t0).count());
      }
    }
    double med[2];
    for (int m = 0; m < 2; ++m) {
      std::sort(us[m].begin(), us[m].end());
      med[m] = us[m][us[m].size() / 2];
    }
    uint32_t decoded = 0;
    const double dec =
        g_fl_image.is_flash(t) ? DecodeOnly(t, runs, &decoded) : 0.0;
    printf("%-44s %10.1f %10.1f %10.1f %8.1f%% %9u %10.1f %8.1f%%%s\n",
           fl_tasks[t].name, med[0], med[1], med[1] - med[0],
           100.0 * (med[1] - med[0]) / med[0], decoded, dec,
           100.0 * dec / med[0],
           g_fl_image.is_flash(t) ? "" : " (rebuild task)");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (!OpenBoth()) return 1;
  if (fl_register_ops(g_fl_resolver) != kTfLiteOk ||
      rb_register_ops(g_rb_resolver) != kTfLiteOk) {
    printf("FAIL: register_ops\n");
    return 1;
  }
  uint32_t flash_tasks = 0;
  for (uint32_t t = 0; t < FL_TASK_COUNT; ++t)
    flash_tasks += g_fl_image.is_flash(t) ? 1u : 0u;
  CHECK(flash_tasks > 0, "the flash image has no flash task");
  // No model region: fine for an all-flash image, refused otherwise.
  CHECK(g_rb.Init(&g_rb_image, &g_rb_resolver, nullptr, 0, g_rb_arena,
                  sizeof g_rb_arena) == yono::TflmStatus::kBadArgument,
        "rebuild image without a model region accepted");
  CHECK(g_fl.Init(&g_fl_image, &g_fl_resolver, nullptr, 0, g_fl_arena,
                  sizeof g_fl_arena) == (flash_tasks == FL_TASK_COUNT
                                             ? yono::TflmStatus::kOk
                                             : yono::TflmStatus::kBadArgument),
        "Init without a model region");
  CHECK(g_fl.Init(&g_fl_image, &g_fl_resolver, FL_REGION, FL_MODEL_REGION_SIZE,
                  g_fl_arena, sizeof g_fl_arena) == yono::TflmStatus::kOk,
        "flash Init");
  CHECK(g_rb.Init(&g_rb_image, &g_rb_resolver, g_rb_region, sizeof g_rb_region,
                  g_rb_arena, sizeof g_rb_arena) == yono::TflmStatus::kOk,
        "rebuild Init");
  if (g_failures) return 1;
  if (argc == 3 && strcmp(argv[1], "--bench") == 0) return Bench(atoi(argv[2]));

  const uint32_t n = FL_TASK_COUNT;
  // Forward: rebuild mode gives the reference, flash mode must match.
  for (uint32_t t = 0; t < n; ++t) {
    RunAndCompare(g_rb, "rebuild", t, "forward");
    RunAndCompare(g_fl, "flash", t, "forward");
  }
  // Reverse, flash first.
  for (uint32_t k = 0; k < n; ++k) {
    const uint32_t t = n - 1 - k;
    RunAndCompare(g_fl, "flash", t, "reverse");
    RunAndCompare(g_rb, "rebuild", t, "reverse");
  }
  // Interleaved: 0, n-1, 1, n-2, ...; the first mode alternates.
  for (uint32_t k = 0; k < n; ++k) {
    const uint32_t t = (k % 2 == 0) ? k / 2 : n - 1 - k / 2;
    yono::TflmExecutor& a = (k % 2 == 0) ? g_fl : g_rb;
    yono::TflmExecutor& b = (k % 2 == 0) ? g_rb : g_fl;
    RunAndCompare(a, &a == &g_fl ? "flash" : "rebuild", t, "interleaved");
    RunAndCompare(b, &b == &g_fl ? "flash" : "rebuild", t, "interleaved");
  }
  // Two flash tasks back to back with no rebuild in between.
  for (uint32_t t = 0; t + 1 < n; t += 2) {
    RunAndCompare(g_fl, "flash", t + 1, "flash only");
    RunAndCompare(g_fl, "flash", t, "flash only");
  }

  // Each flash task with exactly its arena_size (in g_fl's arena: Init
  // first destroys g_fl's interpreter, which lives partly in it).
  CHECK(g_fl.Init(&g_fl_image, &g_fl_resolver, FL_REGION, FL_MODEL_REGION_SIZE,
                  g_fl_arena, sizeof g_fl_arena) == yono::TflmStatus::kOk,
        "flash re-Init");
  for (uint32_t t = 0; t < n; ++t) {
    if (!g_fl_image.is_flash(t)) continue;
    const uint32_t need = g_fl_image.arena_size(t);
    yono::TflmExecutor ex;
    CHECK(ex.Init(&g_fl_image, &g_fl_resolver, FL_REGION, FL_MODEL_REGION_SIZE,
                  g_fl_arena, need) == yono::TflmStatus::kOk &&
              ex.switch_to(t) == yono::TflmStatus::kOk,
          "%s with exactly arena_size %u", fl_tasks[t].name, need);
    printf("%-44s flash: model in place %7u B, arena used %7zu of %7u B\n",
           fl_tasks[t].name, g_fl_image.model_size(t), ex.arena_used_bytes(),
           need);
  }

  // A flash model in a plain MicroInterpreter without the image in its
  // external context: YONO_DECODE's Prepare refuses it.
  for (uint32_t t = 0; t < n; ++t) {
    if (!g_fl_image.is_flash(t)) continue;
    alignas(tflite::MicroInterpreter) static unsigned char
        storage[sizeof(tflite::MicroInterpreter)];
    tflite::MicroInterpreter* interp = new (storage)
        tflite::MicroInterpreter(tflite::GetModel(g_fl_image.flash_model(t)),
                                 g_fl_resolver, g_fl_arena, sizeof g_fl_arena);
    CHECK(interp->AllocateTensors() != kTfLiteOk,
          "%s: AllocateTensors without the image in the external context",
          fl_tasks[t].name);
    interp->~MicroInterpreter();
    break;
  }

  printf(
      "%u tasks (%u flash), %u outputs compared bit-exact across modes "
      "and orders\n",
      n, flash_tasks, g_compared);
  printf(g_failures == 0 ? "PASS\n" : "FAIL (%d)\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
