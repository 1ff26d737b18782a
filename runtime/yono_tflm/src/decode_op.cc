// YONO_DECODE kernel: see yono/tflm_decode.h.
#include "yono/tflm_decode.h"

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_utils.h"
#include "yono/image.h"

namespace yono {
namespace {

constexpr int kIndices = 0;
constexpr int kRecord = 1;
constexpr int kOutput = 0;

const Image* ImageOf(TfLiteContext* context) {
  const Image* image = static_cast<const Image*>(
      tflite::GetMicroContext(context)->external_context());
  return image != nullptr && image->is_open() ? image : nullptr;
}

TfLiteStatus CheckTensors(const Image* image, const TfLiteTensor* indices,
                          const TfLiteTensor* record,
                          const TfLiteTensor* output) {
  if (image == nullptr) {
    MicroPrintf("YONO_DECODE: no open yono::Image in the external context");
    return kTfLiteError;
  }
  if (indices == nullptr || record == nullptr || output == nullptr ||
      indices->type != kTfLiteUInt8 || record->type != kTfLiteUInt8 ||
      !tflite::IsConstantTensor(indices) || !tflite::IsConstantTensor(record) ||
      record->bytes != YONO_FILL_RECORD_SIZE || output->type != kTfLiteInt8) {
    MicroPrintf(
        "YONO_DECODE: inputs must be constant uint8 indices and "
        "record[24], output int8");
    return kTfLiteError;
  }
  if (indices->bytes > 0xFFFFFFFFu) return kTfLiteError;
  uint32_t length = 0;
  const Status st =
      image->CheckRecord(record->data.uint8, indices->data.uint8,
                         static_cast<uint32_t>(indices->bytes), &length);
  if (st != Status::kOk) {
    MicroPrintf("YONO_DECODE: record refused: %s", StatusString(st));
    return kTfLiteError;
  }
  if (output->bytes != length) {
    MicroPrintf("YONO_DECODE: output has %u bytes, the record decodes %u",
                static_cast<unsigned>(output->bytes),
                static_cast<unsigned>(length));
    return kTfLiteError;
  }
  return kTfLiteOk;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE_EQ(context, tflite::NumInputs(node), 2);
  TF_LITE_ENSURE_EQ(context, tflite::NumOutputs(node), 1);
  tflite::MicroContext* micro = tflite::GetMicroContext(context);
  TfLiteTensor* indices = micro->AllocateTempInputTensor(node, kIndices);
  TfLiteTensor* record = micro->AllocateTempInputTensor(node, kRecord);
  TfLiteTensor* output = micro->AllocateTempOutputTensor(node, kOutput);
  const TfLiteStatus st =
      CheckTensors(ImageOf(context), indices, record, output);
  if (indices != nullptr) micro->DeallocateTempTfLiteTensor(indices);
  if (record != nullptr) micro->DeallocateTempTfLiteTensor(record);
  if (output != nullptr) micro->DeallocateTempTfLiteTensor(output);
  return st;
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* indices =
      tflite::micro::GetEvalInput(context, node, kIndices);
  const TfLiteEvalTensor* record =
      tflite::micro::GetEvalInput(context, node, kRecord);
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, 0);
  const Image* image = ImageOf(context);
  if (image == nullptr) return kTfLiteError;
  // Checked in Prepare: only the O(1) checks of DecodeRecord remain.
  const uint32_t bytes =
      static_cast<uint32_t>(tflite::ElementCount(*output->dims));
  return image->DecodeRecord(tflite::micro::GetTensorData<uint8_t>(record),
                             tflite::micro::GetTensorData<uint8_t>(indices),
                             tflite::micro::GetTensorData<int8_t>(output),
                             bytes) == Status::kOk
             ? kTfLiteOk
             : kTfLiteError;
}

}  // namespace

const TFLMRegistration* Register_YONO_DECODE() {
  static const TFLMRegistration registration =
      tflite::micro::RegisterOp(nullptr, Prepare, Eval);
  return &registration;
}

}  // namespace yono
