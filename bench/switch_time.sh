#!/bin/sh
# Task-switch benchmark: host (rebuild vs memcpy, wall clock) on every test
# image of a build, and Cortex-M7 under QEMU (instructions per rebuilt byte,
# with -icount shift=0) on the embedded test image.
# Usage: bench/switch_time.sh [build-dir]     (default: ./build; configures and
#        builds it if needed: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$repo/build"}
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build" --parallel

echo "== host =="
images=$(ls "$build"/tests/cpp/images/*/image.bin 2>/dev/null || true)
if [ -z "$images" ]; then
  echo "no test images (is yonoc installed? pip install -e $repo)"
else
  # shellcheck disable=SC2086
  "$build/bench/yono_switch_time" $images
fi

echo "== Cortex-M7 (QEMU mps2-an500, -icount shift=0: 1 insn = 1 ns) =="
elf="$build/tests/mcu/fw/yono_mcu_bench.elf"
if command -v qemu-system-arm >/dev/null 2>&1 && [ -f "$elf" ]; then
  qemu-system-arm -M mps2-an500 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -icount shift=0 -kernel "$elf"
else
  echo "skipped: qemu-system-arm or $elf missing"
fi
