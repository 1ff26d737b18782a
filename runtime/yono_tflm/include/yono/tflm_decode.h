// YONO_DECODE: the TFLM custom operator of a flash task's model
// (docs/image-format.md "Flash tasks"). Inputs [indices (uint8, constant),
// record (uint8[24], constant)], output: the int8 weight tensor it decodes.
//
// How the kernel finds the image: through the MicroInterpreter's external
// context. TflmExecutor::switch_to sets it to the executor's `const
// yono::Image*` before AllocateTensors(); a firmware that runs a flash model
// with its own MicroInterpreter must call
//   interpreter.SetMicroExternalContext(const_cast<yono::Image*>(&image));
// before AllocateTensors() (so it cannot use the external context for
// anything else, e.g. the Ethos-U driver, in that interpreter).
//
// Prepare checks the record and indices against the image
// (yono::Image::CheckRecord: every fill-record rule, exact index count,
// every index < K) and that the output is int8 of exactly `length` bytes.
// Eval decodes into the output tensor with the image's decode paths (SIMD
// on x86 hosts, the attached codeword cache if any, else a
// YONO_STACK_CACHE_BYTES stack workspace). The kernel keeps no persistent
// data and asks for no scratch buffer: its arena cost is the output
// tensor, which TFLM's planner keeps from this operator to the weight's
// last consumer.
#ifndef YONO_TFLM_DECODE_H_
#define YONO_TFLM_DECODE_H_

#include "tensorflow/lite/micro/micro_common.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "yono/image_format.h"

namespace yono {

// The registration (stateless; one static instance).
const TFLMRegistration* Register_YONO_DECODE();

// Adds YONO_DECODE to `resolver` (the generated <prefix>_register_ops calls
// this when the image has a flash task).
template <unsigned int N>
TfLiteStatus AddDecodeOp(tflite::MicroMutableOpResolver<N>& resolver) {
  return resolver.AddCustom(YONO_DECODE_CUSTOM_CODE, Register_YONO_DECODE());
}

}  // namespace yono

#endif  // YONO_TFLM_DECODE_H_
