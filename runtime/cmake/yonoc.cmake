# yonoc CMake helpers for firmware builds.
#
#   include(path/to/yonoc/runtime/cmake/yonoc.cmake)   # or add_subdirectory(yonoc)
#   yonoc_add_image(<target> MODELS <a.tflite> <b.tflite>...
#                   [PREFIX <c_prefix>] [OPTIONS <extra yonoc build args>...])
#
# Adds a build step that runs
#   yonoc build <models> -o <bin>/<target>_yono/image.bin
#         --emit-c <bin>/<target>_yono --prefix <prefix> <OPTIONS>
# whenever a model changes, compiles the generated <prefix>_image.cc into
# <target> and puts <bin>/<target>_yono on its include path.
#
# The yonoc command comes from the cache variable YONOC_EXECUTABLE (a path, or a
# list such as "python3;-m;yonoc"); by default the `yonoc` program on PATH, else
# "<Python3> -m yonoc".
include_guard(GLOBAL)

if(NOT YONOC_EXECUTABLE)
  find_program(_yonoc_program yonoc)
  if(_yonoc_program)
    set(_yonoc_default "${_yonoc_program}")
  else()
    find_package(Python3 COMPONENTS Interpreter QUIET)
    if(Python3_Interpreter_FOUND)
      set(_yonoc_default "${Python3_EXECUTABLE};-m;yonoc")
    else()
      set(_yonoc_default "yonoc")
    endif()
  endif()
  set(YONOC_EXECUTABLE "${_yonoc_default}" CACHE STRING
      "Command that runs yonoc (path, or list like python3;-m;yonoc)")
endif()

function(yonoc_add_image target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "PREFIX" "MODELS;OPTIONS")
  if(NOT TARGET ${target})
    message(FATAL_ERROR "yonoc_add_image: '${target}' is not a target")
  endif()
  if(NOT ARG_MODELS)
    message(FATAL_ERROR "yonoc_add_image(${target}): MODELS is required")
  endif()
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "yonoc_add_image(${target}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(ARG_PREFIX)
    set(prefix "${ARG_PREFIX}")
  else()
    string(MAKE_C_IDENTIFIER "${target}" prefix)
  endif()

  set(models)
  foreach(m IN LISTS ARG_MODELS)
    get_filename_component(abs "${m}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND models "${abs}")
  endforeach()

  set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/${target}_yono")
  set(image "${out_dir}/image.bin")
  set(source "${out_dir}/${prefix}_image.cc")
  add_custom_command(
    OUTPUT "${image}" "${source}" "${out_dir}/${prefix}_image.h" "${out_dir}/${prefix}_ops.h"
    COMMAND "${CMAKE_COMMAND}" -E make_directory "${out_dir}"
    COMMAND ${YONOC_EXECUTABLE} build ${models} -o "${image}"
            --emit-c "${out_dir}" --prefix "${prefix}" ${ARG_OPTIONS}
    DEPENDS ${models}
    COMMENT "yonoc: building the ${target} image"
    VERBATIM COMMAND_EXPAND_LISTS)
  target_sources(${target} PRIVATE "${source}")
  target_include_directories(${target} PRIVATE "${out_dir}")
  if(TARGET yono::runtime)
    target_link_libraries(${target} PRIVATE yono::runtime)
  endif()
  set_property(TARGET ${target} PROPERTY YONOC_IMAGE "${image}")
endfunction()
