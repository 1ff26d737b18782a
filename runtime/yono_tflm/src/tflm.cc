// yono TFLM layer: see yono/tflm.h.
#include "yono/tflm.h"

#include <new>

#include "tensorflow/lite/schema/schema_generated.h"

namespace yono {
namespace {

bool Aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Does any task need the model region (a rebuild task)?
bool HasRebuildTask(const Image& image) {
  for (uint32_t t = 0; t < image.task_count(); ++t)
    if (!image.is_flash(t)) return true;
  return false;
}
bool HasFlashTask(const Image& image) {
  for (uint32_t t = 0; t < image.task_count(); ++t)
    if (image.is_flash(t)) return true;
  return false;
}

}  // namespace

const char* TflmStatusString(TflmStatus status) {
  switch (status) {
    case TflmStatus::kOk: return "ok";
    case TflmStatus::kNotInitialized: return "executor not initialised";
    case TflmStatus::kBadArgument:
      return "bad argument (null or unaligned buffer)";
    case TflmStatus::kImageError: return "image error (see image_status())";
    case TflmStatus::kBadModel: return "unsupported model schema version";
    case TflmStatus::kAllocateFailed:
      return "interpreter setup failed (arena too small or operator missing)";
    case TflmStatus::kNoTask: return "no current task";
    case TflmStatus::kInvokeFailed: return "invoke failed";
    case TflmStatus::kArenaTooSmall:
      return "tensor arena smaller than the task's arena_size in the image";
  }
  return "unknown status";
}

TflmExecutor::TflmExecutor()
    : image_(nullptr),
      resolver_(nullptr),
      region_(nullptr),
      region_size_(0),
      arena_(nullptr),
      arena_size_(0),
      current_(-1),
      image_status_(Status::kOk),
      live_(false),
      storage_{} {}

TflmExecutor::~TflmExecutor() { Release(); }

tflite::MicroInterpreter* TflmExecutor::interpreter() const {
  if (!live_) return nullptr;
  // storage_ holds a MicroInterpreter constructed by placement new.
  return std::launder(reinterpret_cast<tflite::MicroInterpreter*>(
      const_cast<unsigned char*>(storage_)));
}

void TflmExecutor::Release() {
  if (live_) {
    interpreter()->~MicroInterpreter();
    live_ = false;
  }
  current_ = -1;
}

TflmStatus TflmExecutor::Init(const Image* image,
                              const tflite::MicroOpResolver* resolver,
                              uint8_t* model_region, size_t model_region_size,
                              uint8_t* arena, size_t arena_size) {
  Release();
  image_ = nullptr;
  if (image == nullptr || resolver == nullptr || arena == nullptr ||
      !Aligned16(model_region) || !Aligned16(arena)) {
    return TflmStatus::kBadArgument;
  }
  if (!image->is_open()) {
    image_status_ = Status::kNotOpen;
    return TflmStatus::kImageError;
  }
  // No model region only when every task runs in place; flash models are
  // read in place, so the image must be 16-aligned like a model region.
  if ((model_region == nullptr || model_region_size == 0) &&
      HasRebuildTask(*image)) {
    return TflmStatus::kBadArgument;
  }
  if (HasFlashTask(*image) && !Aligned16(image->data())) {
    return TflmStatus::kBadArgument;
  }
  image_ = image;
  resolver_ = resolver;
  region_ = model_region;
  region_size_ = model_region_size;
  arena_ = arena;
  arena_size_ = arena_size;
  image_status_ = Status::kOk;
  return TflmStatus::kOk;
}

TflmStatus TflmExecutor::switch_to(uint32_t task) {
  if (image_ == nullptr) return TflmStatus::kNotInitialized;
  if (live_ && current_ >= 0 && static_cast<uint32_t>(current_) == task) {
    return TflmStatus::kOk;
  }
  // The old interpreter points into the model region: destroy it first.
  Release();
  // TFLM may crash rather than fail on a too-small arena: refuse first.
  // (arena_size is 0 when not measured, and for a bad index, which Rebuild
  // then reports as kNoSuchTask.)
  if (arena_size_ < image_->arena_size(task)) return TflmStatus::kArenaTooSmall;
  const uint8_t* model_bytes = image_->flash_model(task);
  if (model_bytes == nullptr) {
    // A rebuild task (or a bad index, which Rebuild reports).
    uint32_t region_size = region_size_ > 0xFFFFFFFFu
                               ? 0xFFFFFFFFu
                               : static_cast<uint32_t>(region_size_);
    // With a codeword cache attached, Rebuild itself skips the stack
    // workspace (docs/runtime.md, "Stack use of a switch").
    image_status_ = image_->Rebuild(task, region_, region_size, nullptr);
    if (image_status_ != Status::kOk) return TflmStatus::kImageError;
    model_bytes = region_;
  }
  // A flash task runs in place from the image: no copy, no model region.

  const tflite::Model* model = tflite::GetModel(model_bytes);
  if (model->version() != TFLITE_SCHEMA_VERSION) return TflmStatus::kBadModel;

  tflite::MicroInterpreter* interp = new (storage_)
      tflite::MicroInterpreter(model, *resolver_, arena_, arena_size_);
  live_ = true;
  // YONO_DECODE kernels find the image here (yono/tflm_decode.h); set
  // before AllocateTensors(), which runs their Prepare.
  if (interp->initialization_status() != kTfLiteOk ||
      interp->SetMicroExternalContext(const_cast<Image*>(image_)) !=
          kTfLiteOk ||
      interp->AllocateTensors() != kTfLiteOk) {
    Release();
    return TflmStatus::kAllocateFailed;
  }
  current_ = static_cast<int32_t>(task);
  return TflmStatus::kOk;
}

TflmStatus TflmExecutor::switch_to(const char* task_name) {
  if (image_ == nullptr) return TflmStatus::kNotInitialized;
  if (task_name == nullptr) return TflmStatus::kBadArgument;
  int32_t task = image_->find_task(task_name);
  if (task < 0) {
    image_status_ = Status::kNoSuchTask;
    return TflmStatus::kImageError;
  }
  return switch_to(static_cast<uint32_t>(task));
}

TflmStatus TflmExecutor::invoke() {
  if (current_ < 0) return TflmStatus::kNoTask;
  return interpreter()->Invoke() == kTfLiteOk ? TflmStatus::kOk
                                              : TflmStatus::kInvokeFailed;
}

TflmStatus TflmExecutor::reset() {
  if (current_ < 0) return TflmStatus::kNoTask;
  return interpreter()->Reset() == kTfLiteOk ? TflmStatus::kOk
                                             : TflmStatus::kInvokeFailed;
}

size_t TflmExecutor::input_count() const {
  return current_ < 0 ? 0 : interpreter()->inputs_size();
}

size_t TflmExecutor::output_count() const {
  return current_ < 0 ? 0 : interpreter()->outputs_size();
}

TensorView TflmExecutor::View(TfLiteTensor* t) {
  TensorView v{nullptr, 0, kTfLiteNoType, nullptr, 0, 0.0f, 0};
  if (t == nullptr) return v;
  v.data = t->data.raw;
  v.bytes = t->bytes;
  v.type = t->type;
  if (t->dims != nullptr) {
    v.dims = t->dims->data;
    v.rank = t->dims->size;
  }
  v.scale = t->params.scale;
  v.zero_point = t->params.zero_point;
  return v;
}

TensorView TflmExecutor::input(size_t index) const {
  if (current_ < 0 || index >= input_count()) return View(nullptr);
  return View(interpreter()->input(index));
}

TensorView TflmExecutor::output(size_t index) const {
  if (current_ < 0 || index >= output_count()) return View(nullptr);
  return View(interpreter()->output(index));
}

size_t TflmExecutor::arena_used_bytes() const {
  return current_ < 0 ? 0 : interpreter()->arena_used_bytes();
}

}  // namespace yono
