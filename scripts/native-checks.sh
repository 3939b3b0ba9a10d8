#!/usr/bin/env bash
# Build and run the standalone kernel checks (tests/native/: gemm_check, dwconv_check, simd_vs_scalar),
# C++ programs that check every kernel variant compiled for the target without Python, for this
# machine or, cross-compiled, for aarch64 under qemu:
#   bash scripts/native-checks.sh [--build-dir DIR] host|aarch64 [CHECK...]     # default: every check
# They are CMake targets linking pynas_native, so the kernel files and their ISA flags come from
# CMakeLists.txt and the variants from the kernel headers' X-macro lists; ctest runs them (in a cross
# build under qemu-aarch64(-static); QEMU_CPU=cortex-a53 picks the emulated CPU). A variant the CPU
# cannot run is skipped with a message; PYNAS_ISA=scalar|avx2|avx512|neon forces a lower ISA.
#
# The build dir defaults to build/checks-<arch> (<arch>: `uname -m` for host, or aarch64), configured
# here without the Python extension (the first build compiles every kernel: minutes). --build-dir
# reuses a configured pynas build dir for the same target instead, such as build/dev
# (scripts/dev-build.sh), pip's build/cp311-cp311-linux_x86_64 or the aarch64 wheel's
# build/cross-aarch64: only the checks are compiled there, its kernels are reused.
# aarch64 on an x86_64 machine needs g++-aarch64-linux-gnu and qemu-user-static (apt-get install).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "native-checks: $*" >&2; exit 2; }

BUILD_DIR=
if [[ "${1:-}" == --build-dir ]]; then
  [[ $# -ge 2 ]] || die "--build-dir: expected a directory after it"
  BUILD_DIR=$2
  shift 2
fi
TARGET=${1:-}
case "$TARGET" in
  host) ARCH=$(uname -m) ;;
  aarch64) ARCH=aarch64 ;;
  *) die "expected host or aarch64 as the target, got '$TARGET' (usage: native-checks.sh [--build-dir DIR] host|aarch64 [CHECK...])" ;;
esac
shift
ALL_CHECKS=(gemm_check dwconv_check simd_vs_scalar)  # tests/native/CMakeLists.txt's PYNAS_CHECKS
CHECKS=("$@")
[[ ${#CHECKS[@]} -gt 0 ]] || CHECKS=("${ALL_CHECKS[@]}")
for check in "${CHECKS[@]}"; do
  [[ " ${ALL_CHECKS[*]} " == *" $check "* ]] || die "expected checks among ${ALL_CHECKS[*]}, got '$check'"
done

CROSS=0
[[ "$ARCH" == aarch64 && "$(uname -m)" != aarch64 ]] && CROSS=1
if [[ $CROSS == 1 ]]; then
  command -v aarch64-linux-gnu-g++ >/dev/null || die "no aarch64-linux-gnu-g++: apt-get install g++-aarch64-linux-gnu"
  command -v qemu-aarch64-static >/dev/null || command -v qemu-aarch64 >/dev/null ||
    die "no qemu-aarch64(-static) to run the checks under: apt-get install qemu-user-static"
fi

if [[ -n "$BUILD_DIR" ]]; then
  [[ -f "$BUILD_DIR/CMakeCache.txt" ]] || die "$BUILD_DIR: expected a configured CMake build dir of pynas (no CMakeCache.txt)"
  echo "native-checks: reusing $BUILD_DIR"
else
  BUILD_DIR=build/checks-$ARCH
  version=$(python3 -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
  args=(-DCMAKE_BUILD_TYPE=Release -DSKBUILD_PROJECT_VERSION="$version" -DPYNAS_BUILD_EXTENSION=OFF
        -DPYNAS_BUILD_PROFILER=OFF -DPYNAS_BUILD_CHECKS=ON)
  command -v ninja >/dev/null && args+=(-G Ninja)
  [[ $CROSS == 1 ]] && args+=(-DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake")
  if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
    # The toolchain file points the extension at a sysroot when this is set; no extension here.
    env -u PYNAS_ARM64_SYSROOT cmake -S . -B "$BUILD_DIR" "${args[@]}" >/dev/null
  fi
fi

# Two jobs at most: the machine is shared, and the kernels are heavy to compile.
cmake --build "$BUILD_DIR" --target "${CHECKS[@]}" --parallel "${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
# A build dir for the other target would run the wrong kernels (or none): check what came out.
case "$ARCH" in
  aarch64) want=AArch64 ;;
  x86_64) want="Advanced Micro Devices X86-64" ;;
  *) want= ;;
esac
for check in "${CHECKS[@]}"; do
  machine=$(readelf -h "$BUILD_DIR/tests/native/$check" | sed -n 's/^ *Machine: *//p')
  [[ -z "$want" || "$machine" == "$want" ]] ||
    die "$BUILD_DIR/tests/native/$check is built for '$machine', expected '$want' (is $BUILD_DIR for another target?)"
done
regex="^($(IFS='|'; echo "${CHECKS[*]}"))\$"
# -V: each check's own output (one line per variant, skipped ones with the reason); ctest prefixes
# every line with the test's number.
ctest --test-dir "$BUILD_DIR" -R "$regex" --no-tests=error --output-on-failure -V
