# CMake toolchain file: cross-compile pynas for 64-bit ARM Linux (glibc) with Debian's
# aarch64-linux-gnu GCC (apt-get install g++-aarch64-linux-gnu).
#
# The target's Python headers come from a sysroot, a folder holding the target's files under their
# usual paths (scripts/arm64-sysroot.sh makes one from Debian 12's arm64 packages). Name it with
# -DPYNAS_ARM64_SYSROOT=DIR or the environment variable of the same name; with it this file points
# FindPython (through pybind11, in its cross-compiling mode: no interpreter is run) at
# DIR/usr/include/python3.X and names the module .cpython-3X-aarch64-linux-gnu.so.
# scripts/build-wheel-arm64.sh passes all of it to scikit-build-core.
#
# The C/C++ runtime (glibc, libstdc++) is the cross compiler's own (/usr/aarch64-linux-gnu), not
# the sysroot's: the sysroot has no -dev packages but Python's.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(_pynas_triple aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${_pynas_triple}-gcc)
set(CMAKE_CXX_COMPILER ${_pynas_triple}-g++)

# The toolchain file is read again in every try_compile project: hand the sysroot on to them.
if(NOT PYNAS_ARM64_SYSROOT AND DEFINED ENV{PYNAS_ARM64_SYSROOT})
  set(PYNAS_ARM64_SYSROOT "$ENV{PYNAS_ARM64_SYSROOT}")
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PYNAS_ARM64_SYSROOT)

set(CMAKE_FIND_ROOT_PATH /usr/${_pynas_triple})
if(PYNAS_ARM64_SYSROOT)
  get_filename_component(PYNAS_ARM64_SYSROOT "${PYNAS_ARM64_SYSROOT}" ABSOLUTE)
  list(APPEND CMAKE_FIND_ROOT_PATH "${PYNAS_ARM64_SYSROOT}")
endif()
# Programs (the build tools) from the host; libraries and headers from the target only; packages
# (CMake config files such as pybind11's, which are architecture-independent) from both.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

if(PYNAS_ARM64_SYSROOT)
  file(GLOB _pynas_py_includes LIST_DIRECTORIES true "${PYNAS_ARM64_SYSROOT}/usr/include/python3.*")
  list(FILTER _pynas_py_includes INCLUDE REGEX "/python3\\.[0-9]+$")
  list(LENGTH _pynas_py_includes _pynas_n)
  if(NOT _pynas_n EQUAL 1)
    message(FATAL_ERROR "PYNAS_ARM64_SYSROOT=${PYNAS_ARM64_SYSROOT}: expected one usr/include/python3.X, "
                        "found '${_pynas_py_includes}' (make it with scripts/arm64-sysroot.sh)")
  endif()
  string(REGEX REPLACE ".*/python3\\.([0-9]+)$" "\\1" _pynas_py_minor "${_pynas_py_includes}")
  set(Python_INCLUDE_DIR "${_pynas_py_includes}" CACHE PATH "Target Python headers (from the sysroot)")
  # Debian's python3.X/pyconfig.h includes <aarch64-linux-gnu/python3.X/pyconfig.h>: searched
  # after the compiler's own directories, so nothing else of the sysroot shadows them.
  set(CMAKE_C_FLAGS_INIT "-idirafter ${PYNAS_ARM64_SYSROOT}/usr/include")
  set(CMAKE_CXX_FLAGS_INIT "-idirafter ${PYNAS_ARM64_SYSROOT}/usr/include")
  # pybind11: find only the headers (no interpreter, which would be the build machine's).
  set(PYBIND11_USE_CROSSCOMPILING ON CACHE BOOL "")
  # The extension's suffix, unless SETUPTOOLS_EXT_SUFFIX or scikit-build-core's SKBUILD_SOABI says.
  if(NOT DEFINED ENV{SETUPTOOLS_EXT_SUFFIX} AND NOT DEFINED SKBUILD_SOABI)
    set(PYTHON_MODULE_EXT_SUFFIX ".cpython-3${_pynas_py_minor}-${_pynas_triple}.so" CACHE STRING "")
  endif()
endif()
