#!/usr/bin/env bash
# The NEON GEMM kernels, checked without an ARM machine: cross-compile tests/cpp/gemm_check.cc
# (every aarch64 variant against a float64 reference) statically and run it under qemu.
#   apt-get install -y g++-aarch64-linux-gnu qemu-user-static   (or qemu-user)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=$(mktemp "${TMPDIR:-/tmp}/pynas_gemm_check_aarch64.XXXXXX")
trap 'rm -f "$out"' EXIT
aarch64-linux-gnu-g++ -std=c++17 -O2 -Wall -Wextra -static -I cpp/kernels tests/cpp/gemm_check.cc \
  cpp/kernels/gemm_pack.cc cpp/kernels/gemm__neon.cc cpp/kernels/gemm__scalar.cc -o "$out"
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64)
"$qemu" "$out"
