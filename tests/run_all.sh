#!/bin/sh
# The whole test suite: Python (pytest), then the C++ runtime (ctest: host tests, the
# Cortex-M7 build under QEMU when its toolchain is installed), then the same host tests under
# ASan+UBSan. Usage: tests/run_all.sh   (from anywhere; builds under ./build/)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
jobs=$(nproc 2>/dev/null || echo 2)

# lint and format (config in pyproject.toml), then the Python tests
python3 -m ruff check .
python3 -m ruff format --check .
# C++ format (.clang-format) of runtime/ and tests/cpp (the generated image_format.h excepted)
if command -v clang-format >/dev/null 2>&1; then
  git ls-files 'runtime/*.cc' 'runtime/*.h' 'tests/cpp/*.cc' 'tests/cpp/*.h' |
    grep -v '^runtime/include/yono/image_format.h$' | xargs clang-format --dry-run --Werror
else
  echo "clang-format: not installed, C++ format check skipped (Debian: apt-get install clang-format)"
fi
python3 -m pytest -q -n auto --dist loadfile tests  # pytest-xdist: one worker per core, a file per worker

cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/test --parallel "$jobs"
ctest --test-dir build/test --output-on-failure -j "$jobs"

tests/cpp/run_sanitized.sh build/asan -j "$jobs" -L image -R "examples|tflite_micro|unit|regressions|flash_task"

# 60 s libFuzzer run of the image reader (tests/fuzz), when clang + libFuzzer are installed
if command -v clang++ >/dev/null 2>&1; then
  cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DYONO_FUZZ=ON -DYONO_BUILD_TESTS=OFF -DYONO_BUILD_BENCH=OFF >/dev/null
  cmake --build build/fuzz --parallel "$jobs"
  ctest --test-dir build/fuzz --output-on-failure -L fuzz
else
  echo "fuzz: clang++ not found, skipped"
fi
