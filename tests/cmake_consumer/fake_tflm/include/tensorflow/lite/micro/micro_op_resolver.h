// Stand-in for TFLM's micro_op_resolver.h (tests/cmake_consumer).
#ifndef YONO_FAKE_TFLM_MICRO_OP_RESOLVER_H_
#define YONO_FAKE_TFLM_MICRO_OP_RESOLVER_H_

#include "tensorflow/lite/c/common.h"

namespace tflite {
class MicroOpResolver {
 public:
  virtual ~MicroOpResolver() {}
};
}  // namespace tflite

#endif  // YONO_FAKE_TFLM_MICRO_OP_RESOLVER_H_
