# herd::herd_redis, the fleet tier (include/herd/redis/, lib/redis/),
# included by CMakeLists.txt when HERD_WITH_REDIS is on (hiredis found); as
# //:herd_redis in BUILD.bazel. herd::herd does not include it. Its tests
# are tests/redis/, the lab's Redis strategies link it (cmake/HerdLab.cmake).
add_library(herd_redis
  lib/redis/connection.cc
  lib/redis/connection.h
  lib/redis/envelope.cc
  lib/redis/envelope.h
  lib/redis/fleet.cc
  lib/redis/scripts.h)
add_library(herd::herd_redis ALIAS herd_redis)
set_target_properties(herd_redis PROPERTIES
  EXPORT_NAME herd_redis
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
target_include_directories(herd_redis
  PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
  PRIVATE
    # "lib/redis/foo.h", as Bazel resolves it.
    ${PROJECT_SOURCE_DIR})
target_compile_features(herd_redis PUBLIC cxx_std_20)
target_link_libraries(herd_redis
  PUBLIC
    herd::core herd::guards herd::loading_cache herd::thread_pool
    absl::core_headers
    absl::flat_hash_map absl::function_ref absl::strings
  PRIVATE PkgConfig::hiredis)
list(APPEND HERD_INSTALLED herd_redis)
