// Stand-in for TFLM's compatibility.h. Like the real one (whose
// TF_LITE_REMOVE_VIRTUAL_DELETE defines `operator delete(void* p) {}`), it is
// not -Wextra clean: an unused parameter in a header function. Any consumer
// that gets this directory as a plain -I and compiles with -Wall -Wextra
// -Werror fails; as -isystem the warning is suppressed.
#ifndef YONO_FAKE_TFLM_COMPATIBILITY_H_
#define YONO_FAKE_TFLM_COMPATIBILITY_H_

inline void YonoFakeTflmUnusedParameter(void* p) {}

#endif  // YONO_FAKE_TFLM_COMPATIBILITY_H_
