// Small helpers shared by the host test programs (not part of the runtime).
#ifndef YONO_TESTS_CPP_TEST_UTIL_H_
#define YONO_TESTS_CPP_TEST_UTIL_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace yono_test {

// ctest treats this exit code as "skipped" (SKIP_RETURN_CODE).
constexpr int kSkip = 77;

inline bool ReadFile(const std::string& path, std::vector<uint8_t>* out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  out->clear();
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    out->insert(out->end(), buf, buf + n);
  std::fclose(f);
  return true;
}

inline bool FileExists(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  std::fclose(f);
  return true;
}

// The test image is made at build time by make_test_image.cmake, which
// leaves IMAGE.skipped (yonoc not available) or IMAGE.failed (yonoc failed)
// instead of the image. Returns -1 to go on, otherwise the exit code.
inline int CheckImagePresent(const std::string& image) {
  std::vector<uint8_t> why;
  if (ReadFile(image + ".failed", &why)) {
    std::fprintf(stderr, "FAIL: building the test image failed:\n%.*s\n",
                 static_cast<int>(why.size()),
                 reinterpret_cast<const char*>(why.data()));
    return 1;
  }
  if (!FileExists(image)) {
    if (ReadFile(image + ".skipped", &why)) {
      std::printf("SKIP: %.*s\n", static_cast<int>(why.size()),
                  reinterpret_cast<const char*>(why.data()));
    } else {
      std::printf("SKIP: %s does not exist\n", image.c_str());
    }
    return kSkip;
  }
  return -1;
}

// Heap buffer of exactly `size` bytes, 16-byte aligned, so that ASan flags
// any access past its end.
class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t size) : size_(size) {
    void* p = nullptr;
    if (posix_memalign(&p, 16, size == 0 ? 1 : size) != 0) std::abort();
    p_ = static_cast<uint8_t*>(p);
  }
  ~AlignedBuffer() { std::free(p_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  uint8_t* data() { return p_; }
  size_t size() const { return size_; }

 private:
  uint8_t* p_;
  size_t size_;
};

}  // namespace yono_test

#endif  // YONO_TESTS_CPP_TEST_UTIL_H_
