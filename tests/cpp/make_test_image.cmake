# cmake -DYONOC="<cmd;list>" -DPYTHON=<python or empty> -DOUT=<dir> -DMODELS="<a;b>"
#       [-DMAKER=<script.py>] -P make_test_image.cmake
#
# Runs `yonoc build MODELS -o OUT/image.bin` and `yonoc extract OUT/image.bin
# -o OUT/extract`, and writes OUT/stamp on success. When yonoc is not usable
# it writes OUT/image.bin.skipped (tests then report SKIP); when yonoc fails it
# writes OUT/image.bin.failed with its output (tests then FAIL with it).
# In neither case is the stamp written, so the next build tries again.
# OUT/status (ok, skipped or failed) is written every time: other directories
# depend on it, since the stamp may legitimately be missing.
cmake_minimum_required(VERSION 3.20)

string(REPLACE "|" ";" YONOC "${YONOC}")
string(REPLACE "|" ";" MODELS "${MODELS}")
file(MAKE_DIRECTORY "${OUT}")
set(image "${OUT}/image.bin")
file(REMOVE "${image}" "${image}.skipped" "${image}.failed" "${OUT}/stamp")
file(WRITE "${OUT}/status" "skipped")  # until known otherwise
file(REMOVE_RECURSE "${OUT}/extract")

if(NOT MODELS)
  file(WRITE "${image}.skipped" "no models for this test image")
  return()
endif()

# Is yonoc usable at all? (`python -m yonoc` needs the package importable.)
list(GET YONOC 0 first)
list(LENGTH YONOC ncmd)
if(ncmd GREATER 2 AND PYTHON)
  list(GET YONOC 2 module)
  execute_process(COMMAND "${first}" -c "import ${module}"
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
else()
  execute_process(COMMAND ${YONOC} --help RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
endif()
if(NOT rc EQUAL 0)
  file(WRITE "${image}.skipped" "yonoc is not available (${YONOC}); pip install -e <repo> to enable")
  message(STATUS "yonoc not available: test image ${image} skipped")
  return()
endif()

# --no-check: the format tests need images fast, not the fidelity search (tested in pytest).
# -DMAKER=<script.py>: `PYTHON script.py image MODELS` writes the image instead (e.g.
# make_residual_image.py: every tensor at the residual rate). -DFLAGS="<a|b>": more
# `yonoc build` options (e.g. the rates).
string(REPLACE "|" ";" FLAGS "${FLAGS}")
if(MAKER)
  execute_process(COMMAND "${PYTHON}" "${MAKER}" "${image}" ${MODELS}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
else()
  execute_process(COMMAND ${YONOC} build ${MODELS} -o "${image}" --no-check ${FLAGS}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
endif()
if(rc EQUAL 0)
  execute_process(COMMAND ${YONOC} extract "${image}" -o "${OUT}/extract"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out2 ERROR_VARIABLE out2)
  string(APPEND out "${out2}")
endif()
if(NOT rc EQUAL 0)
  file(REMOVE "${image}")
  file(WRITE "${image}.failed" "${YONOC} build/extract exited with ${rc}:\n${out}")
  file(WRITE "${OUT}/status" "failed")
  message(WARNING "yonoc failed for ${image}; its tests will fail:\n${out}")
  return()
endif()
file(WRITE "${OUT}/stamp" "")
file(WRITE "${OUT}/status" "ok")
