#!/bin/sh
# Flash mode in TFLM (issue 14): per task, Invoke time in rebuild mode and in
# flash mode (median, the two modes interleaved) and the decode work alone
# (the task's YONO_DECODE records decoded back to back, best of N).
# Needs a TFLM tree exposed as a CMake target (tests/tflm_switch/README.md).
#
#   bench/flash_invoke.sh TFLM_CMAKE TFLM_TARGET [BUILD_DIR] [RUNS] [MODELS...]
#   e.g. bench/flash_invoke.sh /tmp/h1/tflm.cmake tflm /tmp/fi 31 ../shared/models/*/*.tflite
# MODELS default: examples/models/*.tflite. Both images are built --no-check.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
tflm_cmake=$1
tflm_target=$2
build=${3:-"$repo/build/flash_invoke"}
runs=${4:-31}
shift $(($# < 4 ? $# : 4))
models=""
for m in "$@"; do models="$models$(cd "$(dirname "$m")" && pwd)/$(basename "$m");"; done
set -- -DYONO_TFLM_CMAKE="$tflm_cmake" -DYONO_TFLM_TARGET="$tflm_target" -DCMAKE_BUILD_TYPE=Release
[ -n "$models" ] && set -- "$@" "-DYONO_FLASH_TEST_MODELS=$models"
cmake -S "$repo" -B "$build" "$@" >/dev/null
cmake --build "$build" --target flash_switch_test -j1 >/dev/null
"$build/tests/tflm_switch/flash_switch_test" --bench "$runs"
