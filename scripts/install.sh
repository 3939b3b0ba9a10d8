#!/usr/bin/env bash
# Install pynas (compiled, non-editable) with its test extra into python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PIP_ROOT_USER_ACTION=ignore  # CI and dev machines run as root

# torch first, pinned: the test extra's bare "torch>=2.1" would otherwise pull
# the CUDA build (GBs). A local tag such as 2.13.0+cpu counts as 2.13.0.
TORCH_VERSION=2.13.0
if ! python3 -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  echo "install.sh: installing torch==$TORCH_VERSION"
  python3 -m pip install -q "torch==$TORCH_VERSION"
fi

# Build requirements ([build-system] in pyproject.toml, plus cmake and ninja) go into
# python3 itself and the build runs --no-build-isolation: an isolated build env sits at a
# new temp path each time, which makes CMake regenerate and recompile everything in
# build/; without isolation, rebuilds of build/{wheel_tag} are incremental.
python3 -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.13" "cmake>=3.15" ninja

# Fashion-MNIST, the built-in dataset of the accuracy evaluators: Debian's dataset-fashion-mnist
# (MIT licence; files in /usr/share/datasets/fashion-mnist/). Nothing is downloaded at run time.
if [[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    echo "install.sh: installing Debian's dataset-fashion-mnist"
    apt-get install -y -q dataset-fashion-mnist >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
      || echo "install.sh: WARNING: apt-get could not install dataset-fashion-mnist; the fashion-mnist dataset will be missing"
  else
    echo "install.sh: NOTE: Fashion-MNIST is not installed: on Debian/Ubuntu run 'apt-get install dataset-fashion-mnist' as root;" \
      "elsewhere put the four *-idx?-ubyte.gz files in a folder and set PYNAS_FASHION_MNIST to it"
  fi
fi

echo "install.sh: building and installing pynas[test]"
python3 -m pip install -q --no-build-isolation ".[test]"
