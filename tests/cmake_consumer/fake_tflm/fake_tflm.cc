// Stand-in TFLM library (tests/cmake_consumer): records what yono::tflm hands
// it; one int8 input/output tensor of 4 bytes at the start of the arena.
#include "tensorflow/lite/micro/micro_interpreter.h"

int yono_fake_tflm_constructed = 0;
size_t yono_fake_tflm_last_arena_size = 0;

namespace tflite {

MicroInterpreter::MicroInterpreter(const Model*, const MicroOpResolver&,
                                   uint8_t* arena, size_t arena_size)
    : arena_(arena), arena_size_(arena_size), tensor_(), dims_(),
      layout_dependent_() {
  ++yono_fake_tflm_constructed;
  yono_fake_tflm_last_arena_size = arena_size;
}
MicroInterpreter::~MicroInterpreter() {}
TfLiteStatus MicroInterpreter::initialization_status() const { return kTfLiteOk; }
TfLiteStatus MicroInterpreter::SetMicroExternalContext(void* payload) {
  (void)payload;
  return kTfLiteOk;
}
TfLiteStatus MicroInterpreter::AllocateTensors() {
  if (arena_size_ < 4) return kTfLiteError;
  dims_.size = 1;
  dims_.data[0] = 4;
  tensor_.type = kTfLiteInt8;
  tensor_.data.raw = arena_;
  tensor_.dims = &dims_;
  tensor_.bytes = 4;
  return kTfLiteOk;
}
TfLiteStatus MicroInterpreter::Invoke() { return kTfLiteOk; }
TfLiteStatus MicroInterpreter::Reset() { return kTfLiteOk; }
size_t MicroInterpreter::inputs_size() const { return 1; }
size_t MicroInterpreter::outputs_size() const { return 1; }
TfLiteTensor* MicroInterpreter::input(size_t) { return &tensor_; }
TfLiteTensor* MicroInterpreter::output(size_t) { return &tensor_; }
size_t MicroInterpreter::arena_used_bytes() const { return 4; }

}  // namespace tflite
