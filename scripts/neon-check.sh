#!/usr/bin/env bash
# NEON kernels vs scalar on an x86 host: cross-compile a static aarch64 harness and run it under qemu.
#   apt-get install -y g++-aarch64-linux-gnu qemu-user-static   (or qemu-user: qemu-aarch64)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=build/neon-check
mkdir -p "$out"
k=cpp/kernels
aarch64-linux-gnu-g++ -std=c++17 -O2 -Wall -static -I "$k" tests/native/neon_vs_scalar.cc \
  "$k"/conv__scalar.cc "$k"/conv__neon.cc "$k"/pool_fc_se__scalar.cc "$k"/pool_fc_se__neon.cc -o "$out/neon_vs_scalar"
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64)
"$qemu" "$out/neon_vs_scalar"
