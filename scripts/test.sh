#!/usr/bin/env bash
# Install pynas, then run its tests against the INSTALLED package. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install.sh

# Plain `python3 -m pytest` would put the cwd (this repo root) first on sys.path, so
# `import pynas` would find the source folder, which has no compiled _core. Python's -P
# (3.11+) keeps the cwd off sys.path, and --import-mode=importlib (pyproject addopts) keeps
# pytest from adding the rootdir; so the tests import the installed pynas (a source import
# would fail loudly: no pynas._core). Not the `pytest` script: with pyenv its shim may be
# missing until `pyenv rehash`, or belong to another python.
exec python3 -P -m pytest "$@"
