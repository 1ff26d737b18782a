# cmake -DYONOC="<cmd|list>" -DOUT=<dir> -DSTAMP=<file> -DEXAMPLES=<dir> -DSHARED=<dir> -P make_seeds.cmake
#
# Seed corpus for yono_image_fuzzer, made at build time from real models (no
# binaries in the repository). Each seed is a small real image, built with
# options that cover the reader's paths:
#   examples.bin     examples/models/*.tflite, defaults (linear layout, K=256, s=4/2)
#   tfm_km.bin       tflite-micro hello_world + micro_speech: --kernel-major, K=16
#   nuvoton_s9.bin   nuvoton gearbox + gsensor + stm32 HAR: s=9,3 / 8,1, K=64
#   hello_k7.bin     tflite-micro hello_world alone: K=7 (indices must be checked)
#   gearbox.bin      nuvoton gearbox autoencoder alone, defaults
#   stmnist_km.bin   stm32 EMNIST CNN: --kernel-major (3x3 layout-1 records), s=9,3 / 16,6, K=200
#   s16_s6.bin       nuvoton gsensor + stm32 HAR: s=16,6 in both groups, K=32
# Models that are missing are left out; when yonoc is not usable the corpus
# stays empty (the fuzzer then starts from tests/fuzz/regressions only).
cmake_minimum_required(VERSION 3.20)
string(REPLACE "|" ";" YONOC "${YONOC}")
file(REMOVE_RECURSE "${OUT}")
file(MAKE_DIRECTORY "${OUT}")
file(REMOVE "${STAMP}")

execute_process(COMMAND ${YONOC} --help RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
if(NOT rc EQUAL 0)
  message(STATUS "yonoc not available (${YONOC}): no generated fuzz seeds")
  file(WRITE "${STAMP}" "")
  return()
endif()

function(seed name)
  cmake_parse_arguments(PARSE_ARGV 1 A "" "" "MODELS;OPTIONS")
  set(models)
  foreach(m IN LISTS A_MODELS)
    if(EXISTS "${m}")
      list(APPEND models "${m}")
    endif()
  endforeach()
  if(NOT models)
    return()
  endif()
  execute_process(COMMAND ${YONOC} build ${models} -o "${OUT}/${name}.bin" --no-check --jobs 1
                          ${A_OPTIONS}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "yonoc failed for fuzz seed ${name}:\n${out}")
  endif()
endfunction()

file(GLOB examples "${EXAMPLES}/*.tflite")
seed(examples MODELS ${examples})
seed(tfm_km MODELS "${SHARED}/tflite-micro/hello_world_int8.tflite"
                   "${SHARED}/tflite-micro/micro_speech_quantized.tflite"
     OPTIONS --kernel-major --codewords 16)
seed(nuvoton_s9 MODELS "${SHARED}/nuvoton-gearbox/gearbox_autoencoder_int8.tflite"
                       "${SHARED}/nuvoton-gsensor/gsensor_cnn_int8.tflite"
                       "${SHARED}/stm32ai-modelzoo/har_gmp_wl_24_wisdm_int8.tflite"
     OPTIONS --subvector-lengths A=9,3 --subvector-lengths B=8,1 --codewords 64)
seed(hello_k7 MODELS "${SHARED}/tflite-micro/hello_world_int8.tflite" OPTIONS --codewords 7)
seed(gearbox MODELS "${SHARED}/nuvoton-gearbox/gearbox_autoencoder_int8.tflite")
seed(stmnist_km MODELS "${SHARED}/stm32ai-modelzoo/ic_stmnist_v1_emnist_int8.tflite"
     OPTIONS --kernel-major --subvector-lengths A=9,3 --subvector-lengths B=16,6 --codewords 200)
seed(s16_s6 MODELS "${SHARED}/nuvoton-gsensor/gsensor_cnn_int8.tflite"
                   "${SHARED}/stm32ai-modelzoo/har_gmp_wl_24_wisdm_int8.tflite"
     OPTIONS --subvector-lengths A=16,6 --subvector-lengths B=16,6 --codewords 32)
file(WRITE "${STAMP}" "")
