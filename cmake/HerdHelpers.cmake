# Helpers for tests/, benchmarks/ and examples/ CMakeLists.txt.

# herd_check_listed(<glob> <names>...)
#
# Fails the configure step if a file in the current source directory that
# matches <glob> is not among <names> (file names without extension). Bazel
# globs these directories, CMake lists them; this keeps the two in step, and
# CONFIGURE_DEPENDS re-runs the check when a file is added.
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
    file(RELATIVE_PATH dir "${PROJECT_SOURCE_DIR}" "${CMAKE_CURRENT_SOURCE_DIR}")
    message(FATAL_ERROR
      "${dir}/ has sources CMake does not build: ${missing}\n"
      "Add them to the list in ${dir}/CMakeLists.txt (Bazel picks them up by itself).")
  endif()
endfunction()
