#!/usr/bin/env bash
# Install pynas, then show what it does on this machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install.sh

# The console script sits beside python3's other scripts (a pyenv shim for it
# only appears after `pyenv rehash`); fall back to PATH.
PYNAS="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/pynas"
[[ -x "$PYNAS" ]] || PYNAS=pynas

"$PYNAS" info
"$PYNAS" describe mnasnet-a1
"$PYNAS" sample --space mnasnet -n 5 --seed 0
"$PYNAS" run mnasnet-a1 --threads 1 --runs 100
# Predicted latency from the shipped bundles: this machine class (native, LiteRT) and a Pixel 3.
"$PYNAS" predictors
"$PYNAS" predict mnasnet-a1 --predictor x86-avx512-native
"$PYNAS" predict mnasnet-a1 --predictor x86-avx512-litert --breakdown
"$PYNAS" predict "$("$PYNAS" sample --space fbnet -n 1 --seed 0)" --predictor pixel3
