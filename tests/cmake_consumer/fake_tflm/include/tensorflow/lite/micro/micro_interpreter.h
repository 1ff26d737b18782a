// Stand-in for TFLM's MicroInterpreter (tests/cmake_consumer). Its layout
// depends on a define the fake TFLM target publishes as a usage requirement
// (as TF_LITE_STATIC_MEMORY changes the real TfLiteTensor): a consumer that
// does not get the define does not compile.
#ifndef YONO_FAKE_TFLM_MICRO_INTERPRETER_H_
#define YONO_FAKE_TFLM_MICRO_INTERPRETER_H_

#include <stddef.h>
#include <stdint.h>

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifndef YONO_FAKE_TFLM_LAYOUT
#error "YONO_FAKE_TFLM_LAYOUT (a layout define of the TFLM target) did not reach this consumer"
#endif

// How many interpreters were constructed, and with which arena: the test
// checks that a refused switch never reached TFLM.
extern int yono_fake_tflm_constructed;
extern size_t yono_fake_tflm_last_arena_size;

namespace tflite {
class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& resolver,
                   uint8_t* arena, size_t arena_size);
  ~MicroInterpreter();
  TfLiteStatus initialization_status() const;
  TfLiteStatus AllocateTensors();
  TfLiteStatus SetMicroExternalContext(void* payload);
  TfLiteStatus Invoke();
  TfLiteStatus Reset();
  size_t inputs_size() const;
  size_t outputs_size() const;
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  size_t arena_used_bytes() const;

 private:
  uint8_t* arena_;
  size_t arena_size_;
  TfLiteTensor tensor_;
  TfLiteIntArray dims_;
  uint8_t layout_dependent_[YONO_FAKE_TFLM_LAYOUT];
};
}  // namespace tflite

#endif  // YONO_FAKE_TFLM_MICRO_INTERPRETER_H_
