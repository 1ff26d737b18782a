// Stand-in for TFLM's tensorflow/lite/c/common.h: only what yono/tflm.h and
// tflm.cc use. Not TFLM: written for tests/cmake_consumer.
#ifndef YONO_FAKE_TFLM_COMMON_H_
#define YONO_FAKE_TFLM_COMMON_H_

#include <stddef.h>
#include <stdint.h>

#include "tensorflow/lite/micro/compatibility.h"

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

typedef enum {
  kTfLiteNoType = 0,
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt16 = 7,
  kTfLiteInt8 = 9,
} TfLiteType;

typedef struct {
  int size;
  int data[4];
} TfLiteIntArray;

typedef struct {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef union {
  void* raw;
} TfLitePtrUnion;

typedef struct {
  TfLiteType type;
  TfLitePtrUnion data;
  TfLiteIntArray* dims;
  TfLiteQuantizationParams params;
  size_t bytes;
} TfLiteTensor;

#endif  // YONO_FAKE_TFLM_COMMON_H_
