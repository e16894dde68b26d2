# Compiles SRC and passes only if that fails with one error, matching EXPECT.
execute_process(COMMAND ${CMAKE_COMMAND} -E env LC_ALL=C ${CXX} -std=c++17 -fsyntax-only -I${INC} ${SRC}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "${SRC} compiled, but it must not")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "${SRC} failed to compile, but not for the expected reason '${EXPECT}':\n${err}")
endif()
# Short: one error, the library's own, not a cascade from its internals.
string(REGEX MATCHALL "error:" errors "${out}${err}")
list(LENGTH errors n)
if(n GREATER 1)
  message(FATAL_ERROR "${SRC} failed to compile as expected, but with ${n} errors instead of one:\n${err}")
endif()
message(STATUS "failed to compile as expected: ${EXPECT}")
