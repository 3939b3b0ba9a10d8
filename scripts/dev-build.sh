#!/usr/bin/env bash
# Developer build: compile pynas._core into this tree's pynas/ folder, without installing anything,
# so several work trees can be built and tested side by side:
#   bash scripts/dev-build.sh && PYTHONPATH=$PWD python3 -P -m pytest tests/test_kernels_dwconv.py
# It also builds the static on-device profiler build/dev/pynas-profile, which the tool's tests use,
# and the standalone kernel checks (tests/native/; run them with `ctest --test-dir build/dev` or
# scripts/native-checks.sh --build-dir build/dev host, which the kernel tests do).
# Extra arguments go to the CMake configure step (e.g. -DCMAKE_BUILD_TYPE=Debug).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=$(python3 -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DSKBUILD_PROJECT_VERSION="$version" \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v python3)" "$@" >/dev/null
cmake --build build/dev
cp -f build/dev/_core*.so pynas/
