# Helpers for tests/, benchmarks/ and examples/ CMakeLists.txt.

# herd_check_listed(<glob> <names>...)
#
# Fails the configure step if a file under the current source directory that
# matches <glob> is not among <names> (file names without extension). Bazel
# globs tests/, benchmarks/ and examples/, CMake lists them; this keeps the
# two in step (and lib/*.cc in some component), and CONFIGURE_DEPENDS
# re-runs the check when a file is added.
function(herd_check_listed pattern)
  file(GLOB files CONFIGURE_DEPENDS RELATIVE "${CMAKE_CURRENT_SOURCE_DIR}"
    "${CMAKE_CURRENT_SOURCE_DIR}/${pattern}")
  set(missing "")
  foreach(file IN LISTS files)
    get_filename_component(name "${file}" NAME_WE)
    if(NOT name IN_LIST ARGN)
      list(APPEND missing "${name}")
    endif()
  endforeach()
  if(missing)
    file(RELATIVE_PATH list_file "${PROJECT_SOURCE_DIR}" "${CMAKE_CURRENT_LIST_FILE}")
    message(FATAL_ERROR
      "${pattern} (in ${list_file}'s directory) has sources CMake does not build: ${missing}\n"
      "Add them to the list in ${list_file}.")
  endif()
endfunction()
