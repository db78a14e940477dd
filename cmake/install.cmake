# install.cmake — what `cmake --install` puts under the prefix: headers, libnormkit.so and
# libnormkit.a, the normkit::normkit package (config + version + targets), normkit.pc, the
# `normkit` program and the Python module; libnormkit_sync.a (normkit::sync, the package's
# `sync` component) when MPI was found. Every path is relative, so the result relocates.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(NORMKIT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/normkit)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/normkit
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")

install(TARGETS normkit_shared normkit EXPORT normkitTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# SyncBatchNorm over MPI, in the same export set; normkitConfig.cmake finds MPI for it.
set(NORMKIT_HAS_SYNC OFF)
if(TARGET normkit_sync)
  set(NORMKIT_HAS_SYNC ON)
  install(TARGETS normkit_sync EXPORT normkitTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endif()
install(EXPORT normkitTargets NAMESPACE normkit:: DESTINATION ${NORMKIT_CMAKE_DIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/normkitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/normkitConfig.cmake INSTALL_DESTINATION ${NORMKIT_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/normkitConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/normkitConfig.cmake
              ${PROJECT_BINARY_DIR}/normkitConfigVersion.cmake
        DESTINATION ${NORMKIT_CMAKE_DIR})

# pkg-config: the .pc file finds its prefix from its own directory (${pcfiledir}).
file(RELATIVE_PATH NORMKIT_PC_PREFIX_FROM_PCDIR
     /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(${CMAKE_CURRENT_LIST_DIR}/normkit.pc.in ${PROJECT_BINARY_DIR}/normkit.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/normkit.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

if(TARGET normkit_cli)
  install(TARGETS normkit_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

# The Python module goes where the interpreter's own layout puts extension modules,
# relative to the prefix: Debian's /usr/lib/python3/dist-packages -> lib/python3/dist-packages,
# a venv's .../lib/python3.11/site-packages -> lib/python3.11/site-packages.
if(TARGET normkit_python)
  if(Python3_SITEARCH MATCHES "/(lib(64)?/python[^/]*/(site|dist)-packages)$")
    set(_normkit_py_default ${CMAKE_MATCH_1})
  else()
    set(_normkit_py_default ${CMAKE_INSTALL_LIBDIR}/python3/site-packages)
  endif()
  set(NORMKIT_PYTHON_INSTALL_DIR ${_normkit_py_default} CACHE STRING
      "Where `cmake --install` puts the Python module, relative to the prefix")
  install(TARGETS normkit_python LIBRARY DESTINATION ${NORMKIT_PYTHON_INSTALL_DIR})
endif()
