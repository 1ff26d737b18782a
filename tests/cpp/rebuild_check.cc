// yono_rebuild_check IMAGE DIR
// Opens IMAGE, rebuilds every task and compares it byte for byte with
// DIR/<task name>.tflite (written by `yonoc extract`), and checks
// model_crc32. Each task is rebuilt several ways (stack codeword cache,
// full workspace, no cache = slow path, tiny workspace) which must agree.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"
#include "yono/image.h"

using yono_test::AlignedBuffer;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IMAGE DIR\n", argv[0]);
    return 2;
  }
  const std::string image_path = argv[1];
  const std::string dir = argv[2];
  const int present = yono_test::CheckImagePresent(image_path);
  if (present >= 0) return present;

  std::vector<uint8_t> file;
  if (!yono_test::ReadFile(image_path, &file)) {
    std::fprintf(stderr, "FAIL: cannot read %s\n", image_path.c_str());
    return 1;
  }
  // Exact-size copy so ASan sees any read past the end.
  AlignedBuffer img(file.size());
  std::memcpy(img.data(), file.data(), file.size());

  yono::Image image;
  const yono::Status st =
      image.Open(img.data(), static_cast<uint32_t>(img.size()));
  if (st != yono::Status::kOk) {
    std::fprintf(stderr, "FAIL: Open: %s\n", yono::StatusString(st));
    return 1;
  }
  std::printf("%s: %u bytes, %u tasks, max_model_size %u, max_arena_size %u\n",
              image_path.c_str(), image.size(), image.task_count(),
              image.max_model_size(), image.max_arena_size());

  // A second handle with a persistent codeword cache attached.
  yono::Image cached;
  std::vector<uint8_t> cw_cache(image.codeword_cache_size() + 1);
  if (cached.Open(img.data(), static_cast<uint32_t>(img.size())) !=
          yono::Status::kOk ||
      (image.codeword_cache_size() > 0 &&
       cached.AttachCodewordCache(cw_cache.data(),
                                  image.codeword_cache_size() - 1) !=
           yono::Status::kRegionTooSmall) ||
      cached.AttachCodewordCache(cw_cache.data() + 1,
                                 image.codeword_cache_size()) !=
          yono::Status::kOk) {
    std::fprintf(stderr, "FAIL: AttachCodewordCache\n");
    return 1;
  }
  std::printf("codeword cache: %u bytes\n", image.codeword_cache_size());

  int failures = 0;
  uint32_t largest = 0;
  for (uint32_t t = 0; t < image.task_count(); ++t) {
    const char* name = image.task_name(t);
    const uint32_t size = image.model_size(t);
    largest = size > largest ? size : largest;
    if (image.find_task(name) != static_cast<int32_t>(t)) {
      std::fprintf(stderr, "FAIL: find_task(%s) != %u\n", name, t);
      ++failures;
    }
    std::vector<uint8_t> expected;
    const std::string path = dir + "/" + name + ".tflite";
    if (!yono_test::ReadFile(path, &expected)) {
      std::fprintf(stderr, "FAIL: cannot read %s\n", path.c_str());
      ++failures;
      continue;
    }
    static uint8_t workspace[YONO_MAX_WORKSPACE_BYTES];
    struct Variant {
      const char* what;
      uint8_t* ws;
      uint32_t ws_size;
      bool use_ws;
      const yono::Image* im;
    } variants[] = {
        {"stack cache", nullptr, 0, false, &image},
        {"attached cache", nullptr, 0, false, &cached},
        {"full workspace", workspace, sizeof workspace, true, &image},
        {"no cache", nullptr, 0, true, &image},
        {"tiny workspace", workspace, 16, true, &image},
        {"one-codebook workspace", workspace, 1024 + 512, true, &image},
    };
    bool ok = true;
    for (const Variant& v : variants) {
      // Region a bit larger than the model, with a guard pattern after it.
      const uint32_t guard = 32;
      AlignedBuffer out(size + guard);
      std::memset(out.data(), 0xA5, out.size());
      uint32_t written = 12345;
      const yono::Status rs =
          v.use_ws ? v.im->Rebuild(t, out.data(), size + guard, &written, v.ws,
                                   v.ws_size)
                   : v.im->Rebuild(t, out.data(), size + guard, &written);
      if (rs != yono::Status::kOk || written != size) {
        std::fprintf(stderr, "FAIL: %s (%s): Rebuild: %s, written %u\n", name,
                     v.what, yono::StatusString(rs), written);
        ok = false;
        continue;
      }
      for (uint32_t g = 0; g < guard; ++g) {
        if (out.data()[size + g] != 0xA5) {
          std::fprintf(stderr, "FAIL: %s (%s): wrote past model_size\n", name,
                       v.what);
          ok = false;
          break;
        }
      }
      if (expected.size() != size ||
          std::memcmp(expected.data(), out.data(), size) != 0) {
        size_t first = 0;
        while (first < size && first < expected.size() &&
               expected[first] == out.data()[first])
          ++first;
        std::fprintf(stderr,
                     "FAIL: %s (%s): differs from %s (sizes %u/%zu, first diff "
                     "at %zu)\n",
                     name, v.what, path.c_str(), size, expected.size(), first);
        ok = false;
      }
      const uint32_t crc = yono::Crc32(out.data(), size);
      if (crc != image.model_crc32(t)) {
        std::fprintf(stderr, "FAIL: %s (%s): crc %08x != model_crc32 %08x\n",
                     name, v.what, crc, image.model_crc32(t));
        ok = false;
      }
    }
    std::printf("  %-48s %8u bytes crc %08x %s\n", name, size,
                image.model_crc32(t), ok ? "ok" : "FAIL");
    if (!ok) ++failures;
  }
  if (largest != image.max_model_size()) {
    std::fprintf(stderr, "note: max_model_size %u, largest model_size %u\n",
                 image.max_model_size(), largest);
  }
  std::printf(failures == 0 ? "PASS\n" : "FAIL (%d tasks)\n", failures);
  return failures == 0 ? 0 : 1;
}
