#!/usr/bin/env bash
# Build and run tests/native/dwconv_check.cc for this machine's architecture (x86_64: scalar, AVX2,
# AVX-512F kernels; aarch64: scalar, NEON), each ISA file with the flags CMakeLists.txt gives it.
# With ARCH=aarch64 on an x86_64 host: cross-compile with aarch64-linux-gnu-g++ -static and run under
# qemu-aarch64(-static). Extra arguments are compiler flags (e.g. -fsanitize=address -g).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${OUT:-build/native-check}
mkdir -p "$out"
arch=${ARCH:-$(uname -m)}
flags=(-std=c++17 -O2 -Wall -Icpp/kernels "$@")
if [[ $arch == aarch64 && $(uname -m) != aarch64 ]]; then
  aarch64-linux-gnu-g++ "${flags[@]}" -static tests/native/dwconv_check.cc cpp/kernels/dwconv__scalar.cc \
    cpp/kernels/dwconv__neon.cc -o "$out/dwconv_check_arm64"
  qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64)
  exec "$qemu" "$out/dwconv_check_arm64"
elif [[ $arch == aarch64 ]]; then
  g++ "${flags[@]}" tests/native/dwconv_check.cc cpp/kernels/dwconv__scalar.cc cpp/kernels/dwconv__neon.cc \
    -o "$out/dwconv_check"
else
  g++ "${flags[@]}" -mavx2 -mfma -mf16c -c cpp/kernels/dwconv__avx2.cc -o "$out/dwconv__avx2.o" &
  g++ "${flags[@]}" -mavx512f -mavx2 -mfma -mf16c -c cpp/kernels/dwconv__avx512f.cc -o "$out/dwconv__avx512f.o"
  wait
  g++ "${flags[@]}" tests/native/dwconv_check.cc cpp/kernels/dwconv__scalar.cc "$out/dwconv__avx2.o" \
    "$out/dwconv__avx512f.o" -o "$out/dwconv_check"
fi
exec "$out/dwconv_check"
