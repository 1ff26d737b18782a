#!/bin/sh
# Everything the test suite needs on a fresh Debian machine (CI runs on a clean clone).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # Cortex-M7 cross build (C and C++: newlib + libstdc++) + QEMU, clang for the libFuzzer target, CMake/Ninja for the runtime
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    cmake ninja-build g++ gcc-arm-none-eabi libnewlib-arm-none-eabi \
    libstdc++-arm-none-eabi-newlib qemu-system-arm \
    clang libclang-rt-14-dev clang-format >/dev/null
fi
# torch pinned: 2.13.0 is the CPU build; an unpinned torch pulls a multi-GB CUDA build
python3 -m pip install -q -e "$repo[test,torch]"
