#!/usr/bin/env bash
# The GPU check: what can only be measured on a GPU machine, in one short run (< 8 minutes).
#
#     bash scripts/gpu_check.sh [STEPS]        # default 100 steps per case
#
# 1. installs the project with the CUDA extra (`pip install -e ".[cuda]"`), or, on a machine
#    without network access, the wheels in ./.whl (see below) on top of the machine's own JAX;
# 2. runs two shortened paper cases (svgd and ensemble of one seed, d = 20 nonlinear) with
#    `pytest benchmarks -n 2`: two xdist workers on one GPU, first with a cold JAX compilation
#    cache, then again with it warm; prints each case's device tag, worker, compile and per-step
#    times, and the GPU's peak memory use during each session (nvidia-smi, sampled every 0.2 s);
# 3. runs the step benchmark (scripts/bench_step.py): seconds per step, dibs-lib's likelihood
#    classes vs the fused ones, d = 20 nonlinear and linear, 30 particles.
#
# Offline machines: put the wheels of what the machine lacks in ./.whl (for Python 3.12 there:
# mlflow, dibs-lib, pydantic and their dependencies) and the script installs them with
# `pip install --no-deps --target`, keeping the machine's own CUDA JAX.
set -uo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-100}
OUT=${OUT:-$(mktemp -d)}
export PYTHONUNBUFFERED=1
stamp() { echo "== $(date +%T) $*"; }

stamp "install"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site:$PWD
    PY=python3
else
    python3 -m venv .venv-gpu && . .venv-gpu/bin/activate && python -m pip install -q -e ".[cuda]" || exit 1
    PY=python
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import jax, dibs, mlflow; print('jax', jax.__version__, jax.devices(), '| mlflow', mlflow.__version__)" || exit 1

session() {  # session NAME: the two cases with two workers on the one GPU
    local name=$1
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/mem_$name.txt" &
    local smi=$!
    local start=$SECONDS
    MLFLOW_TRACKING_URI="sqlite:///$OUT/gpu_check.db" HARNESS_JAX_CACHE=/tmp/gpu_check_jax_cache \
        timeout 200 $PY -m pytest benchmarks --configs configs/dibs_vs_ensemble.yaml -k "paper-er-s0-" \
        --override inference.steps="$STEPS" -n 2 -q 2>&1 | tail -n 25
    kill $smi 2>/dev/null; wait $smi 2>/dev/null
    echo "session $name: wall $((SECONDS - start)) s, GPU memory used at peak $(sort -n "$OUT/mem_$name.txt" | tail -1) MiB"
}

stamp "two shortened paper cases, 2 workers on 1 GPU, cold compilation cache ($STEPS steps)"
rm -rf /tmp/gpu_check_jax_cache
session cold
stamp "the same, warm compilation cache"
session warm
$PY - "$OUT/gpu_check.db" "$STEPS" <<'EOF'
import sys
from mlflow.tracking import MlflowClient
client = MlflowClient(f"sqlite:///{sys.argv[1]}")
steps = int(sys.argv[2])
exp = client.get_experiment_by_name("dibs_vs_ensembles")
runs = client.search_runs([exp.experiment_id], "tags.case_id != ''", order_by=["attributes.start_time ASC"])
# (fit - compile) / steps includes the eager initialisation of the particles (~3 s on an H100):
# compare sessions of different step counts for the per-step time alone
print(f"{'case':22s} {'status':9s} {'worker':6s} {'device':34s} {'compile_s':>9s} {'fit_s':>8s} {'(fit-compile)/steps':>20s} {'eshd':>6s}")
for r in runs:
    m, t = r.data.metrics, r.data.tags
    per_step = (m.get("fit_s", float("nan")) - m.get("compile_s", 0.0)) / steps
    print(f"{t['case_id']:22s} {r.info.status:9s} {t['worker']:6s} {t['device'][:34]:34s} {m.get('compile_s', float('nan')):9.2f} "
          f"{m.get('fit_s', float('nan')):8.2f} {per_step:20.4f} {m.get('eshd', float('nan')):6.2f}")
EOF

stamp "step benchmark (dibs-lib classes vs fused, side by side)"
timeout 150 $PY scripts/bench_step.py --reps 5 --models nonlinear
timeout 60 $PY scripts/bench_step.py --reps 5 --models linear --no-pieces
stamp "done"
