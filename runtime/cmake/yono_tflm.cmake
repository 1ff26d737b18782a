# yono::tflm: the TFLM layer (task switch + interpreter setup), built only when
# the firmware provides TensorFlow Lite Micro as a CMake target. yonoc never
# builds, downloads or ships TFLM.
#
#   YONO_TFLM_TARGET  name of an existing target that provides TFLM (headers,
#                     compile definitions such as TF_LITE_STATIC_MEMORY, and the
#                     library), e.g. the firmware's `tflm` or `tflite-micro`.
#                     Plain or IMPORTED. Every define that changes TFLM's class
#                     layout (TF_LITE_STATIC_MEMORY, compression support, ...)
#                     must be in its INTERFACE_COMPILE_DEFINITIONS: tflm.cc
#                     embeds a MicroInterpreter and must see the layout the
#                     library was built with.
#   YONO_TFLM_CMAKE   optional: a CMake file included first to define that
#                     target (for example an imported prebuilt TFLM library).
#
# Included from the top-level CMakeLists.txt after yono::runtime is defined.
include_guard(GLOBAL)

set(YONO_TFLM_TARGET "" CACHE STRING
    "Existing CMake target providing TFLM (enables yono::tflm)")
set(YONO_TFLM_CMAKE "" CACHE FILEPATH
    "Optional CMake file that defines YONO_TFLM_TARGET (included first)")

if(YONO_TFLM_CMAKE)
  include("${YONO_TFLM_CMAKE}")
endif()

set(YONO_HAVE_TFLM OFF)
if(YONO_TFLM_TARGET)
  if(TARGET ${YONO_TFLM_TARGET})
    set(YONO_HAVE_TFLM ON)
  else()
    message(WARNING "yono: YONO_TFLM_TARGET='${YONO_TFLM_TARGET}' is not a target "
                    "(define it before add_subdirectory(yonoc), or pass YONO_TFLM_CMAKE); "
                    "yono::tflm is not built")
  endif()
endif()

if(YONO_HAVE_TFLM)
  get_filename_component(_yono_root "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
  # TFLM's headers are not warning-clean (e.g. unused parameters in
  # compatibility.h), and a firmware's TFLM is often a plain target whose
  # include directories are not SYSTEM. yono_tflm_system re-exports them
  # (transitively, via the genex) as SYSTEM, so our warning flags and -Werror
  # apply to our sources only. GCC and Clang drop a -I that is also given as
  # -isystem. Everything else (compile definitions such as
  # TF_LITE_STATIC_MEMORY, which change TFLM's class layout, options, the
  # library itself) comes from linking the TFLM target normally.
  add_library(yono_tflm_system INTERFACE)
  target_include_directories(yono_tflm_system SYSTEM INTERFACE
    "$<TARGET_PROPERTY:${YONO_TFLM_TARGET},INTERFACE_INCLUDE_DIRECTORIES>")
  target_link_libraries(yono_tflm_system INTERFACE ${YONO_TFLM_TARGET})

  add_library(yono_tflm STATIC "${_yono_root}/runtime/yono_tflm/src/tflm.cc")
  # The YONO_DECODE kernel of flash tasks (yono/tflm_decode.h). Off only for
  # a stand-in TFLM without the kernel API (tests/cmake_consumer).
  option(YONO_TFLM_DECODE_OP "Build the YONO_DECODE kernel into yono::tflm" ON)
  if(YONO_TFLM_DECODE_OP)
    target_sources(yono_tflm PRIVATE "${_yono_root}/runtime/yono_tflm/src/decode_op.cc")
  endif()
  add_library(yono::tflm ALIAS yono_tflm)
  target_include_directories(yono_tflm PUBLIC
    $<BUILD_INTERFACE:${_yono_root}/runtime/yono_tflm/include>)
  target_link_libraries(yono_tflm PUBLIC yono::runtime yono_tflm_system)
  target_compile_features(yono_tflm PUBLIC cxx_std_17)
  set_target_properties(yono_tflm PROPERTIES CXX_EXTENSIONS OFF)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    # The runtime's full set (YONO_WARNING_FLAGS, incl. -Werror when
    # YONO_WARNINGS_AS_ERRORS): TFLM's headers are SYSTEM, so only tflm.cc is
    # held to it.
    target_compile_options(yono_tflm PRIVATE ${YONO_WARNING_FLAGS}
      -fno-exceptions -fno-rtti)
  elseif(MSVC)
    target_compile_options(yono_tflm PRIVATE /W4
      $<$<BOOL:${YONO_WARNINGS_AS_ERRORS}>:/WX>)
  endif()
  unset(_yono_root)
endif()

# Host test (tests/tflm_switch): switches through every task of an image in TFLM and
# compares outputs with TFLM's Python interpreter. Without TFLM it is
# registered as a skipped test.
if(YONO_BUILD_TESTS AND CMAKE_SOURCE_DIR STREQUAL CMAKE_CURRENT_SOURCE_DIR
   AND EXISTS "${CMAKE_CURRENT_LIST_DIR}/../../tests/tflm_switch/CMakeLists.txt")
  enable_testing()
  add_subdirectory("${CMAKE_CURRENT_LIST_DIR}/../../tests/tflm_switch"
                   "${CMAKE_CURRENT_BINARY_DIR}/tests/tflm_switch")
endif()
