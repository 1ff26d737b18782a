// Replays files through the fuzz entry point without libFuzzer (any
// compiler): yono_fuzz_replay FILE|DIR...  Directories are read (not
// recursively) in name order. Exits non-zero if nothing was replayed; a
// failing input aborts (see image_fuzzer.cc).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#include "../cpp/test_util.h"

using yono_test::ReadFile;

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (int a = 1; a < argc; ++a) {
    std::error_code ec;
    if (fs::is_directory(argv[a], ec)) {
      std::vector<std::string> in_dir;
      for (const auto& e : fs::directory_iterator(argv[a], ec))
        if (e.is_regular_file(ec) && e.path().filename().string()[0] != '.')
          in_dir.push_back(e.path().string());
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (fs::exists(argv[a], ec)) {
      files.push_back(argv[a]);
    } else {
      std::printf("(skipping missing %s)\n", argv[a]);
    }
  }
  std::vector<uint8_t> data;
  int replayed = 0;
  for (const std::string& f : files) {
    if (!ReadFile(f, &data)) {
      std::fprintf(stderr, "FAIL: cannot read %s\n", f.c_str());
      return 1;
    }
    std::printf("replay %s (%zu bytes)\n", f.c_str(), data.size());
    std::fflush(stdout);
    LLVMFuzzerTestOneInput(data.data(), data.size());
    ++replayed;
  }
  if (replayed == 0) {
    std::fprintf(stderr, "FAIL: no inputs\n");
    return 1;
  }
  std::printf("PASS: %d inputs\n", replayed);
  return 0;
}
