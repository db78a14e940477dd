# consumer_tests.cmake — CTest checks that normkit is consumable once installed: a temp
# install (fixture), then a find_package() project (no CMAKE_CXX_STANDARD: C++20 must come
# from the targets; normkit::sync too when MPI was found), a pkg-config g++/gcc line, the
# Python module from a clean environment, and the shared library's exported symbols; plus
# the C API test linked against libnormkit.so in the tree.
set(NORMKIT_CONSUMER_PREFIX ${PROJECT_BINARY_DIR}/consumer/prefix)
set(NORMKIT_CONSUMER_DRIVER ${PROJECT_SOURCE_DIR}/tests/consumer/run.sh)
set(_nk_py_dir "")
if(TARGET normkit_python)
  set(_nk_py_dir ${NORMKIT_PYTHON_INSTALL_DIR})
endif()
set(_nk_env
  NORMKIT_BUILD_DIR=${PROJECT_BINARY_DIR}
  NORMKIT_PREFIX=${NORMKIT_CONSUMER_PREFIX}
  NORMKIT_LIBDIR=${CMAKE_INSTALL_LIBDIR}
  NORMKIT_PYDIR=${_nk_py_dir}
  NORMKIT_SOURCE_DIR=${PROJECT_SOURCE_DIR}
  NORMKIT_WORK_DIR=${PROJECT_BINARY_DIR}/consumer
  NORMKIT_VERSION=${PROJECT_VERSION}
  NORMKIT_PYTHON=${Python3_EXECUTABLE}
  NORMKIT_HAS_SYNC=${NORMKIT_HAS_SYNC}
  CMAKE_COMMAND=${CMAKE_COMMAND}
  CMAKE_GENERATOR=${CMAKE_GENERATOR})

add_test(NAME consumer_install COMMAND bash ${NORMKIT_CONSUMER_DRIVER} install)
set_tests_properties(consumer_install PROPERTIES FIXTURES_SETUP normkit_installed)
set(_nk_modes cmake pkgconfig symbols)
if(TARGET normkit_python)
  list(APPEND _nk_modes python)
endif()
foreach(mode IN LISTS _nk_modes)
  add_test(NAME consumer_${mode} COMMAND bash ${NORMKIT_CONSUMER_DRIVER} ${mode})
  set_tests_properties(consumer_${mode} PROPERTIES FIXTURES_REQUIRED normkit_installed
    TIMEOUT 120)
endforeach()
set_tests_properties(consumer_install PROPERTIES TIMEOUT 120)
foreach(mode install ${_nk_modes})
  set_property(TEST consumer_${mode} PROPERTY ENVIRONMENT "${_nk_env}")
endforeach()

# The C API, compiled as C and linked against the shared library.
add_executable(normkit_c_api_test ${PROJECT_SOURCE_DIR}/tests/c/test_c_api.c)
set_target_properties(normkit_c_api_test PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON
  C_EXTENSIONS OFF)
target_compile_options(normkit_c_api_test PRIVATE -Wall -Wextra -Werror)
target_link_libraries(normkit_c_api_test PRIVATE normkit_shared m)
add_test(NAME c_api COMMAND normkit_c_api_test)
