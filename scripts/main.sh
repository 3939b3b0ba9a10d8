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
# The main job: a search. NAS-Bench-201 on the Pixel 3's latency (HW-NAS-Bench), target T at the
# space's 25% latency quantile, 200 evaluations of the 12-epoch accuracy on ImageNet16-120; the
# benchmark knows every answer, so the report ends with the pick's regret against the best under T.
# Seconds; its folder holds the log (resume with --resume), pareto.png, best.txt, summary.json.
RUN="runs/search-$(date +%Y%m%d-%H%M%S)-$$"
"$PYNAS" search --space nb201 --predictor nb201-pixel3 --target-quantile 0.25 --evaluator nb201:imagenet16 \
  --budget 200 --seed 0 --out "$RUN"
# Accuracy without a benchmark table: a zero-cost proxy (synflow, at initialisation, milliseconds) on
# two NAS-Bench-201 cells, reported as each one's percentile in the space (see README: the evaluators).
"$PYNAS" evaluate $("$PYNAS" sample --space nb201 -n 2 --seed 0) --evaluator zero-cost:synflow
"$PYNAS" describe mnasnet-a1 --kernels blocks
"$PYNAS" sample --space mnasnet -n 5 --seed 0
# A latency predictor for the machine in hand: its own if `pynas device init` made one before, else
# made now by profiling this machine (about 15 minutes on one core; rerun to resume if stopped). The
# shipped bundles describe another machine (an AVX-512 one); `pynas device init --method fewshot`
# takes a minute but predicts only networks of the MnasNet space, ~7% RMSPE on this kind of machine.
if ! "$PYNAS" device show --require; then
  "$PYNAS" device init
fi
# Measured next to predicted for this machine, then next to the shipped bundle of another machine
# (the AVX-512 one the bundles were made on), which says so.
"$PYNAS" run mnasnet-a1 --threads 1 --runs 100 --predict
"$PYNAS" run mnasnet-a1 --threads 1 --runs 100 --predict x86-avx512-native
"$PYNAS" predictors
"$PYNAS" predict mnasnet-a1 --predictor x86-avx512-litert --breakdown
"$PYNAS" predict "$("$PYNAS" sample --space fbnet -n 1 --seed 0)" --predictor pixel3
