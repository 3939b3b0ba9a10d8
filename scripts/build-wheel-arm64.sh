#!/usr/bin/env bash
# Cross-build pynas's wheel for 64-bit ARM Linux (aarch64, glibc) on an x86_64 Debian machine:
#   bash scripts/build-wheel-arm64.sh [OUTDIR]      # OUTDIR: default dist/
# gives OUTDIR/pynas-<version>-cp311-cp311-linux_aarch64.whl, for Python 3.11 on a board or phone
# running 64-bit Linux with glibc >= 2.34 and GCC >= 11's libstdc++ (Debian 12 / Raspberry Pi OS
# 12, whose python3 is 3.11; a Debian userland on a phone):
#   pip install pynas-<version>-cp311-cp311-linux_aarch64.whl
# Needs g++-aarch64-linux-gnu (apt-get install) and the arm64 sysroot with the target's Python
# headers, which it makes if missing (scripts/arm64-sysroot.sh; $PYNAS_ARM64_SYSROOT or
# build/arm64-sysroot). The build dir build/cross-aarch64 is kept, so rebuilds are incremental.
# Fails unless the wheel is tagged linux_aarch64 and its extension is an AArch64 ELF file named
# _core.cpython-311-aarch64-linux-gnu.so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUTDIR=${1:-dist}
mkdir -p "$OUTDIR"
OUTDIR=$(realpath "$OUTDIR")
SYSROOT=$(realpath -m "${PYNAS_ARM64_SYSROOT:-build/arm64-sysroot}")
BUILD_DIR=build/cross-aarch64
TOOLCHAIN=$PWD/cmake/aarch64-linux-gnu.cmake
export PIP_ROOT_USER_ACTION=ignore

die() { echo "build-wheel-arm64: $*" >&2; exit 1; }

command -v aarch64-linux-gnu-g++ >/dev/null ||
  die "no aarch64-linux-gnu-g++: apt-get install g++-aarch64-linux-gnu"
bash scripts/arm64-sysroot.sh "$SYSROOT"

# The target's Python version is the sysroot's, whatever python3 runs the build.
pyinc=$(cd "$SYSROOT/usr/include" && ls -d python3.* | grep -E '^python3\.[0-9]+$')
minor=${pyinc#python3.}
TAG="cp3$minor-cp3$minor-linux_aarch64"
EXT_SUFFIX=".cpython-3$minor-aarch64-linux-gnu.so"
version=$(python3 -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
wheel="$OUTDIR/pynas-$version-$TAG.whl"

# Build requirements into python3 itself, as scripts/install.sh does (--no-build-isolation keeps
# the build dir's CMake cache valid between runs). cmake.python-hints and wheel.tags need
# scikit-build-core 0.11.
python3 -m pip install -q "scikit-build-core>=0.11" "pybind11>=2.13" "cmake>=3.15" ninja

rm -f "$wheel"
# Without these the names silently say x86_64: SETUPTOOLS_EXT_SUFFIX names the extension
# (scikit-build-core's SKBUILD_SOABI, pybind11), _PYTHON_HOST_PLATFORM and wheel.tags the wheel.
# cmake.python-hints=false: no Python_EXECUTABLE/INCLUDE_DIR of the build machine's python3;
# the toolchain file takes the headers from the sysroot.
SETUPTOOLS_EXT_SUFFIX=$EXT_SUFFIX _PYTHON_HOST_PLATFORM=linux-aarch64 PYNAS_ARM64_SYSROOT=$SYSROOT \
  python3 -m pip wheel . --no-build-isolation --no-deps --disable-pip-version-check -w "$OUTDIR" \
  -Ccmake.define.CMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
  -Ccmake.define.PYNAS_ARM64_SYSROOT="$SYSROOT" \
  -Ccmake.python-hints=false \
  -Cbuild-dir="$BUILD_DIR" \
  -Cwheel.tags="$TAG"

# Check what came out.
[[ -f "$wheel" ]] || die "expected $wheel; $OUTDIR has: $(ls "$OUTDIR")"
sos=$(python3 -c "import sys, zipfile; print('\n'.join(n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith('.so')))" "$wheel")
[[ "$sos" == "pynas/_core$EXT_SUFFIX" ]] || die "$wheel: expected only pynas/_core$EXT_SUFFIX, found: $sos"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])" "$wheel" "$sos" "$tmp"
machine=$(readelf -h "$tmp/$sos" | sed -n 's/^ *Machine: *//p')
[[ "$machine" == "AArch64" ]] || die "$sos is built for '$machine', not AArch64"
echo "build-wheel-arm64: $wheel"
echo "build-wheel-arm64: $sos: $(file -b "$tmp/$sos" 2>/dev/null || echo "ELF $machine")"
