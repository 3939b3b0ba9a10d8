#!/usr/bin/env bash
# Build pynas-profile, the on-device profiler (cpp/tools/pynas_profile.cc), as a fully static binary:
#   bash scripts/build-profiler.sh [host|aarch64] [BUILD_DIR]
# gives build/profiler-<arch>/pynas-profile (<arch>: `uname -m` for host, or aarch64), to copy to a
# phone or board as it is (no glibc, libstdc++ or Python needed there; pynas.profiling.adb does
# that for Android). aarch64 on an x86_64 machine needs g++-aarch64-linux-gnu (cross-compiled with
# cmake/aarch64-linux-gnu.cmake; no sysroot: the Python extension is not built).
#
# BUILD_DIR defaults to build/profiler-<arch>, configured here. An existing pynas build dir for the
# same target can be given instead, such as scripts/build-wheel-arm64.sh's build/cross-aarch64 or
# pip's build/cp311-cp311-linux_x86_64: it is not reconfigured, only its pynas-profile target is
# built, so the kernels compiled there are reused (they take minutes; the tool takes seconds).
# Fails unless the result is a static ELF binary for the target.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "build-profiler: $*" >&2; exit 1; }

TARGET=${1:-host}
case "$TARGET" in
  host) ARCH=$(uname -m) ;;
  aarch64) ARCH=aarch64 ;;
  *) die "expected host or aarch64 as the first argument, got '$TARGET'" ;;
esac
OUT_DIR=build/profiler-$ARCH
BUILD_DIR=${2:-$OUT_DIR}

if [[ -n "${2:-}" ]]; then
  [[ -f "$BUILD_DIR/CMakeCache.txt" ]] || die "$BUILD_DIR: expected a configured CMake build dir of pynas (no CMakeCache.txt)"
  echo "build-profiler: reusing $BUILD_DIR"
else
  version=$(python3 -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
  # The tool only: no extension, no kernel checks (scripts/native-checks.sh builds those).
  args=(-DCMAKE_BUILD_TYPE=Release -DSKBUILD_PROJECT_VERSION="$version" -DPYNAS_BUILD_EXTENSION=OFF
        -DPYNAS_BUILD_PROFILER=ON -DPYNAS_STATIC_PROFILER=ON -DPYNAS_BUILD_CHECKS=OFF)
  command -v ninja >/dev/null && args+=(-G Ninja)
  if [[ "$ARCH" == aarch64 && "$(uname -m)" != aarch64 ]]; then
    command -v aarch64-linux-gnu-g++ >/dev/null || die "no aarch64-linux-gnu-g++: apt-get install g++-aarch64-linux-gnu"
    args+=(-DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake")
  fi
  # The toolchain file points the extension at a sysroot when this is set; no extension here.
  env -u PYNAS_ARM64_SYSROOT cmake -S . -B "$BUILD_DIR" "${args[@]}" >/dev/null
fi
# One job: the machine is shared, and the NEON kernels are heavy to compile.
cmake --build "$BUILD_DIR" --target pynas-profile -j 1

mkdir -p "$OUT_DIR"
if [[ "$(realpath "$BUILD_DIR/pynas-profile")" != "$(realpath -m "$OUT_DIR/pynas-profile")" ]]; then
  cp -f "$BUILD_DIR/pynas-profile" "$OUT_DIR/pynas-profile"
fi
BIN=$OUT_DIR/pynas-profile

# Check what came out: the target's machine, and no program interpreter (dynamic loader).
machine=$(readelf -h "$BIN" | sed -n 's/^ *Machine: *//p')
case "$ARCH" in
  aarch64) want=AArch64 ;;
  x86_64) want="Advanced Micro Devices X86-64" ;;
  *) want=$machine ;;
esac
[[ "$machine" == "$want" ]] || die "$BIN is built for '$machine', expected '$want' (is $BUILD_DIR for another target?)"
if readelf -lW "$BIN" | grep -q 'Requesting program interpreter'; then
  die "$BIN is dynamically linked (was $BUILD_DIR configured with -DPYNAS_STATIC_PROFILER=OFF?)"
fi
echo "build-profiler: $BIN ($machine, static)"
