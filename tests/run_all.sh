#!/bin/sh
# The whole test suite: Python (pytest), then the C++ runtime (ctest: host tests, the
# Cortex-M7 build under QEMU when its toolchain is installed), then the same host tests under
# ASan+UBSan. Usage: tests/run_all.sh   (from anywhere; builds under ./build/)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
jobs=$(nproc 2>/dev/null || echo 2)

python3 -m pytest -q tests

cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/test --parallel "$jobs"
ctest --test-dir build/test --output-on-failure -j "$jobs"

tests/cpp/run_sanitized.sh build/asan -j "$jobs" -L image -R "examples|tflite_micro|unit"
