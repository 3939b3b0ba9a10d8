#!/usr/bin/env bash
# Install pynas, then run its tests against the INSTALLED package. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install.sh

# pynas-profile for the tool's tests (tests/test_pynas_profile_tool.py, test_profiling_adb.py),
# built in pip's build dir of the install above: its kernels are compiled already, so this only
# compiles the tool and links it (a fresh build dir would compile every kernel again, minutes).
# pyproject.toml names that dir build/{wheel_tag}; scikit-build-core computes the tag.
wheel_tag=$(python3 -c "from scikit_build_core.builder.wheel_tag import WheelTag; print(WheelTag.compute_best([]))" \
  2>/dev/null) || wheel_tag="(scikit-build-core's WheelTag.compute_best failed)"
if [[ -f "build/$wheel_tag/CMakeCache.txt" ]]; then
  bash scripts/build-profiler.sh host "build/$wheel_tag"
  # The kernel tests build and run the standalone checks (tests/native/) there too, for the same reason.
  export PYNAS_CHECKS_BUILD_DIR=$PWD/build/$wheel_tag
else
  echo "test.sh: pip's build dir build/$wheel_tag not found: building pynas-profile in its own build dir (slower)"
  bash scripts/build-profiler.sh host
fi

# Plain `python3 -m pytest` would put the cwd (this repo root) first on sys.path, so
# `import pynas` would find the source folder, which has no compiled _core. Python's -P
# (3.11+) keeps the cwd off sys.path, and --import-mode=importlib (pyproject addopts) keeps
# pytest from adding the rootdir; so the tests import the installed pynas (a source import
# would fail loudly: no pynas._core). Not the `pytest` script: with pyenv its shim may be
# missing until `pyenv rehash`, or belong to another python.
exec python3 -P -m pytest "$@"
