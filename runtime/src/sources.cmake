# The runtime's sources, for every target that compiles them (yono_runtime,
# the libFuzzer build). image_decode_x86.cc is the host SIMD decode: listed
# only when building for x86-64 (it also compiles to nothing elsewhere).
set(YONO_RUNTIME_SOURCES
  "${CMAKE_CURRENT_LIST_DIR}/crc32.cc"
  "${CMAKE_CURRENT_LIST_DIR}/image_validate.cc"
  "${CMAKE_CURRENT_LIST_DIR}/image_decode.cc"
  "${CMAKE_CURRENT_LIST_DIR}/image_rebuild.cc")
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  list(APPEND YONO_RUNTIME_SOURCES "${CMAKE_CURRENT_LIST_DIR}/image_decode_x86.cc")
endif()
