# Builds tests/consumer against the library, either through add_subdirectory
# or through find_package after a cmake --install into a private prefix.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed: ${ARGN}\n${out}\n${err}")
  endif()
  set(LAST_OUT "${out}" PARENT_SCOPE)
endfunction()
if(MODE STREQUAL "installed")
  run(${CMAKE_COMMAND} -S ${SRC} -B ${WORK}/lib -DMULTIPROCESSING_BUILD_TESTS=OFF
      -DMULTIPROCESSING_BUILD_EXAMPLES=OFF -DMULTIPROCESSING_BUILD_BENCH=OFF
      -DCMAKE_INSTALL_PREFIX=${WORK}/prefix)
  run(${CMAKE_COMMAND} --build ${WORK}/lib)  # the multiprocessing::compiled library
  run(${CMAKE_COMMAND} --install ${WORK}/lib)
  run(${CMAKE_COMMAND} -S ${SRC}/tests/consumer -B ${WORK}/app -DMODE=installed
      -DCMAKE_PREFIX_PATH=${WORK}/prefix)
else()
  run(${CMAKE_COMMAND} -S ${SRC}/tests/consumer -B ${WORK}/app -DMODE=subdirectory
      -DMP_SOURCE=${SRC})
endif()
run(${CMAKE_COMMAND} --build ${WORK}/app)
set(exes consumer)
if(MODE STREQUAL "installed")
  list(APPEND exes consumer_compiled)
endif()
foreach(exe ${exes})
  run(${WORK}/app/${exe})
  if(NOT LAST_OUT MATCHES "^42\n$")
    message(FATAL_ERROR "${exe} printed '${LAST_OUT}', expected 42")
  endif()
endforeach()
message(STATUS "consumer (${MODE}) OK")
