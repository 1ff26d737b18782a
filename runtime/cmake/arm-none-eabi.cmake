# CMake toolchain file: GNU Arm Embedded (arm-none-eabi-gcc), Cortex-M7 with
# double-precision FPU, hard-float ABI.
#   cmake -DCMAKE_TOOLCHAIN_FILE=runtime/cmake/arm-none-eabi.cmake ...
# Set ARM_NONE_EABI_ROOT (cache/env) if the toolchain is not on PATH.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(ARM_NONE_EABI_ROOT "$ENV{ARM_NONE_EABI_ROOT}" CACHE PATH "arm-none-eabi toolchain prefix")
if(ARM_NONE_EABI_ROOT)
  set(_arm_bin "${ARM_NONE_EABI_ROOT}/bin/")
else()
  set(_arm_bin "")
endif()
set(CMAKE_C_COMPILER "${_arm_bin}arm-none-eabi-gcc")
set(CMAKE_CXX_COMPILER "${_arm_bin}arm-none-eabi-g++")
set(CMAKE_ASM_COMPILER "${_arm_bin}arm-none-eabi-gcc")
set(CMAKE_OBJCOPY "${_arm_bin}arm-none-eabi-objcopy" CACHE FILEPATH "")
set(CMAKE_SIZE "${_arm_bin}arm-none-eabi-size" CACHE FILEPATH "")

# No host executables can be linked without a board's startup/linker script.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(YONO_ARM_CPU_FLAGS "-mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard")
set(CMAKE_C_FLAGS_INIT "${YONO_ARM_CPU_FLAGS} -ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT
    "${YONO_ARM_CPU_FLAGS} -ffunction-sections -fdata-sections -fno-exceptions -fno-rtti -fno-threadsafe-statics")
set(CMAKE_ASM_FLAGS_INIT "${YONO_ARM_CPU_FLAGS}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${YONO_ARM_CPU_FLAGS} -Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
