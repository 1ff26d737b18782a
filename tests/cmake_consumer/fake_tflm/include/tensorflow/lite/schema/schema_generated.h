// Stand-in for TFLM's schema_generated.h: a "model" whose first 4 bytes are
// its schema version (tests/cmake_consumer).
#ifndef YONO_FAKE_TFLM_SCHEMA_GENERATED_H_
#define YONO_FAKE_TFLM_SCHEMA_GENERATED_H_

#include <stdint.h>
#include <string.h>

#define TFLITE_SCHEMA_VERSION 3

namespace tflite {
struct Model {
  uint32_t version() const {
    uint32_t v;
    memcpy(&v, this, sizeof v);
    return v;
  }
};
inline const Model* GetModel(const void* buf) {
  return static_cast<const Model*>(buf);
}
}  // namespace tflite

#endif  // YONO_FAKE_TFLM_SCHEMA_GENERATED_H_
