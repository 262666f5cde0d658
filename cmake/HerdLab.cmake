# The stampede lab, lab/ (lab/BUILD.bazel's //lab:stampede_lab and
# //lab:herd-stampede): every lab/*.cc but main.cc is the library
# herd_stampede_lab, which tests/stampede_lab_test links; main.cc is the
# program herd-stampede.
find_package(SQLite3 REQUIRED)
find_package(nlohmann_json 3 REQUIRED)

file(GLOB HERD_LAB_SOURCES CONFIGURE_DEPENDS
  "${PROJECT_SOURCE_DIR}/lab/*.cc" "${PROJECT_SOURCE_DIR}/lab/*.h")
list(REMOVE_ITEM HERD_LAB_SOURCES "${PROJECT_SOURCE_DIR}/lab/main.cc")

add_library(herd_stampede_lab STATIC ${HERD_LAB_SOURCES})
# "lab/stampede_lab.h", as Bazel resolves it.
target_include_directories(herd_stampede_lab PUBLIC "${PROJECT_SOURCE_DIR}")
target_link_libraries(herd_stampede_lab
  PUBLIC
    herd::herd absl::flat_hash_map absl::flags absl::flags_commandlineflag
    absl::flags_reflection absl::strings absl::str_format
    nlohmann_json::nlohmann_json SQLite::SQLite3)

add_executable(herd-stampede "${PROJECT_SOURCE_DIR}/lab/main.cc")
# stampede_lab_test runs it: in sanitizer builds it needs their options too.
target_link_libraries(herd-stampede PRIVATE herd_stampede_lab herd_sanitizer_options)
