# Helpers so that each concern declares itself in its own folder's CMakeLists.txt and
# nobody edits a shared list to add a file.

# dsk_library(NAME [DEPS target...] [PRIVATE_DEPS target...])
# Builds every .cpp under the current folder (and .cu when CUDA is on) into static library NAME.
# Sources under a cuda/ subfolder are host code of a CUDA backend: built only when CUDA is on.
function(dsk_library name)
  cmake_parse_arguments(ARG "" "" "DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  if(NOT DSK_CUDA)
    list(FILTER sources EXCLUDE REGEX "/cuda/[^/]*\\.cpp$")
  endif()
  # A subfolder with its own CMakeLists.txt is a library of its own (lib/finetune/data).
  file(GLOB_RECURSE nested_lists CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*/CMakeLists.txt)
  foreach(nested_list ${nested_lists})
    get_filename_component(nested_dir ${nested_list} DIRECTORY)
    list(FILTER sources EXCLUDE REGEX "^${nested_dir}/")
  endforeach()
  if(DSK_CUDA)
    file(GLOB_RECURSE cuda_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cu)
    list(APPEND sources ${cuda_sources})
  endif()
  if(NOT sources)
    return()  # a concern folder with no code yet declares nothing
  endif()
  add_library(${name} STATIC ${sources})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/lib ${PROJECT_SOURCE_DIR}/kernels)
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${DSK_WARNINGS}>)
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# dsk_tool(NAME LIBS target...): one binary from tools/NAME.cpp.
function(dsk_tool name)
  cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
  add_executable(${name} ${CMAKE_CURRENT_SOURCE_DIR}/${name}.cpp)
  target_compile_options(${name} PRIVATE ${DSK_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS})
  install(TARGETS ${name} RUNTIME DESTINATION bin)
endfunction()

# dsk_unit_tests(CONCERN LIBS target...): tests/unit/CONCERN/*.cpp into one doctest binary.
function(dsk_unit_tests concern)
  cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/unit/${concern}/*.cpp)
  if(NOT sources)
    return()
  endif()
  set(target dsk_unit_${concern})
  add_executable(${target} ${sources} ${CMAKE_CURRENT_SOURCE_DIR}/doctest_main.cpp)
  target_compile_options(${target} PRIVATE ${DSK_WARNINGS})
  target_compile_definitions(${target} PRIVATE
    DSK_SOURCE_DIR="${PROJECT_SOURCE_DIR}" DSK_BUILD_DIR="${PROJECT_BINARY_DIR}")
  target_link_libraries(${target} PRIVATE ${ARG_LIBS} doctest::doctest)
  add_test(NAME unit.${concern} COMMAND ${target})
  set_tests_properties(unit.${concern} PROPERTIES LABELS "unit;${concern}")
endfunction()

# dsk_cli_tests(): every tests/cli/*.sh is one ctest test, run with the build dir's tools first
# on PATH. A script exits 77 to say "skipped" (ctest shows it as skipped, not passed).
function(dsk_cli_tests)
  file(GLOB scripts CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cli/*.sh)
  foreach(script ${scripts})
    get_filename_component(stem ${script} NAME_WE)
    add_test(NAME cli.${stem} COMMAND bash ${script})
    set_tests_properties(cli.${stem} PROPERTIES
      LABELS "cli"
      SKIP_RETURN_CODE 77
      TIMEOUT 900
      ENVIRONMENT "DSK_SOURCE_DIR=${PROJECT_SOURCE_DIR};DSK_BUILD_DIR=${PROJECT_BINARY_DIR};PATH=${PROJECT_BINARY_DIR}/tools:$ENV{PATH}")
  endforeach()
endfunction()
