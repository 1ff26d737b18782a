#!/bin/sh
# Build the runtime and host tests with ASan+UBSan (YONO_SANITIZE=ON) and run
# the host tests (the Cortex-M7 test is excluded: it does not use the host
# build). Usage: tests/cpp/run_sanitized.sh [build-dir] [extra ctest args...]
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-"$repo/build-asan"}
[ $# -gt 0 ] && shift
generator=""
command -v ninja >/dev/null 2>&1 && generator="-G Ninja"
# shellcheck disable=SC2086
cmake -S "$repo" -B "$build" $generator -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DYONO_SANITIZE=ON -DYONO_BUILD_BENCH=OFF
cmake --build "$build" --parallel
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -LE mcu "$@"
