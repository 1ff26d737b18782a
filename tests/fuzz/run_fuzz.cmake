# cmake -DFUZZER=<exe> -DWORK=<dir> -DSECONDS=<n> -DCORPORA="<a|b>" -P run_fuzz.cmake
# Short libFuzzer run (the ctest `fuzz` label): new inputs go to WORK/corpus,
# crash reproducers to WORK/artifacts/. Fails if libFuzzer reports a crash.
cmake_minimum_required(VERSION 3.20)
string(REPLACE "|" ";" CORPORA "${CORPORA}")
file(MAKE_DIRECTORY "${WORK}/corpus" "${WORK}/artifacts")
set(dirs "${WORK}/corpus")
foreach(d IN LISTS CORPORA)
  if(IS_DIRECTORY "${d}")
    list(APPEND dirs "${d}")
  endif()
endforeach()
execute_process(
  COMMAND "${FUZZER}" -max_total_time=${SECONDS} -timeout=20 -rss_limit_mb=2048
          -print_final_stats=1 "-artifact_prefix=${WORK}/artifacts/" ${dirs}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "yono_image_fuzzer exited with ${rc}; reproducer in ${WORK}/artifacts/ "
                      "(copy it to tests/fuzz/regressions/ once fixed)")
endif()
