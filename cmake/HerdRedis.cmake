# herd::herd_redis, the fleet tier (include/herd/redis/, lib/redis/), built
# only when hiredis is found (pkg-config); herd::herd never depends on it.
# As //:herd_redis in BUILD.bazel. Its tests are tests/redis/.
#
#   -DHERD_WITH_REDIS=AUTO  build it when hiredis is found (the default)
#   -DHERD_WITH_REDIS=ON    require hiredis
#   -DHERD_WITH_REDIS=OFF   never build it
set(HERD_WITH_REDIS AUTO CACHE STRING
  "Build herd::herd_redis (needs hiredis): AUTO, ON or OFF")
set_property(CACHE HERD_WITH_REDIS PROPERTY STRINGS AUTO ON OFF)
set(HERD_REDIS_BUILT OFF)
if(HERD_WITH_REDIS STREQUAL "OFF")
  if(TARGET herd_stampede_lab)
    message(FATAL_ERROR "The stampede lab (lab/) needs herd::herd_redis for its Redis "
      "strategies: configure with -DHERD_BUILD_LAB=OFF, or without HERD_WITH_REDIS=OFF")
  endif()
  return()
endif()

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(hiredis QUIET IMPORTED_TARGET hiredis)
endif()
if(NOT hiredis_FOUND)
  if(TARGET herd_stampede_lab)
    message(FATAL_ERROR "The stampede lab (lab/) runs its Redis strategies on hiredis, "
      "which pkg-config cannot find: install libhiredis-dev (scripts/bootstrap.sh does), "
      "or configure with -DHERD_BUILD_LAB=OFF")
  endif()
  if(HERD_WITH_REDIS STREQUAL "ON")
    message(FATAL_ERROR "HERD_WITH_REDIS=ON, but pkg-config cannot find hiredis (libhiredis-dev)")
  endif()
  message(STATUS "herd: hiredis not found: herd::herd_redis is not built")
  return()
endif()
set(HERD_REDIS_BUILT ON)

file(GLOB_RECURSE HERD_REDIS_HEADERS CONFIGURE_DEPENDS
  "${PROJECT_SOURCE_DIR}/include/herd/redis/*.h")
file(GLOB HERD_REDIS_SOURCES CONFIGURE_DEPENDS
  "${PROJECT_SOURCE_DIR}/lib/redis/*.cc" "${PROJECT_SOURCE_DIR}/lib/redis/*.h")

add_library(herd_redis ${HERD_REDIS_SOURCES} ${HERD_REDIS_HEADERS})
add_library(herd::herd_redis ALIAS herd_redis)
target_include_directories(herd_redis
  PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
  PRIVATE
    ${PROJECT_SOURCE_DIR})
target_link_libraries(herd_redis
  PUBLIC herd::herd absl::function_ref
  PRIVATE PkgConfig::hiredis)
set_target_properties(herd_redis PROPERTIES
  EXPORT_NAME herd_redis
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})

if(HERD_BUILD_TESTS)
  add_subdirectory(tests/redis)
endif()

# The lab's fleet, local and redis-lock strategies (lab/fleet_lab.cc).
if(TARGET herd_stampede_lab)
  target_link_libraries(herd_stampede_lab PUBLIC herd_redis PkgConfig::hiredis)
endif()

if(HERD_INSTALL)
  install(TARGETS herd_redis
    EXPORT herdRedisTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(DIRECTORY include/herd/redis
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/herd
    FILES_MATCHING PATTERN "*.h")
  # herdConfig.cmake includes it when present, after finding hiredis.
  install(EXPORT herdRedisTargets
    NAMESPACE herd::
    DESTINATION "${CMAKE_INSTALL_LIBDIR}/cmake/herd")
endif()
