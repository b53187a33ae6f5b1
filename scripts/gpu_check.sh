#!/usr/bin/env bash
# The GPU check (pipeline/bench/gpu_check.py): forward and forward+backward ceilings of
# efficientnet_lite0/1/2, the attack stage's and the evaluation stage's share of them, on
# one CUDA device; on a machine without one it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m pipeline.bench.gpu_check "$@"
