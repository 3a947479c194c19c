#!/usr/bin/env bash
# The GPU benchmarks of issue 6, for a CUDA machine with torch (and Triton, CuPy if available), no network.
#
#   benchmarks/gpu/run.sh              # full sizes, a few minutes; results in $OUT (default benchmarks/results/gpu)
#   benchmarks/gpu/run.sh --dry-run    # small sizes; with --device cpu it checks the logic without a GPU
#
# lossreg runs from this checkout (PYTHONPATH). Its pure-Python dependencies (pluggy,
# array-api-compat, array-api-extra) are taken from the machine, or else from
# benchmarks/gpu/_deps, which `benchmarks/gpu/run.sh --prepare` fills from this machine's
# environment beforehand (the GPU machine has no network).
set -u
cd "$(dirname "$0")/../.."
DEPS=benchmarks/gpu/_deps
PY="${PYTHON:-python3}"
if [ "${1:-}" = "--prepare" ]; then
    "$PY" - "$DEPS" <<'PY'
import importlib, pathlib, shutil, sys
dest = pathlib.Path(sys.argv[1]); dest.mkdir(parents=True, exist_ok=True)
for name in ("pluggy", "array_api_compat", "array_api_extra"):
    src = pathlib.Path(importlib.import_module(name).__file__).parent
    shutil.copytree(src, dest / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "tests"))
print("copied into", dest)
PY
    exit $?
fi
OUT="${OUT:-benchmarks/results/gpu}"
mkdir -p "$OUT"
# An installed lossreg (with its plugins' entry points) comes first; this checkout serves otherwise.
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD:$PWD/$DEPS"
export PYTHONUNBUFFERED=1
# lossreg's column times the kernels that are off by default until they meet their target.
export LOSSREG_CE_TRITON=${LOSSREG_CE_TRITON:-1} LOSSREG_CUPY_KERNELS=${LOSSREG_CUPY_KERNELS:-1}
DEVICE=cuda
prev=""
for arg in "$@"; do [ "$prev" = "--device" ] && DEVICE="$arg"; prev="$arg"; done
{
    date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
    "$PY" -c "import triton; print('triton', triton.__version__)" 2>&1 | tail -1
    "$PY" -c "import cupy; print('cupy', cupy.__version__)" 2>&1 | tail -1
} | tee "$OUT/env.txt"
status=0
# Correctness is conformance/gpu/run.sh's: every loss and case, on CuPy and torch on CUDA.
timeout "${BENCH_TIMEOUT:-420}" "$PY" benchmarks/gpu/bench_gpu.py --out "$OUT" "$@" 2>&1 | tee "$OUT/bench.log"
status=${PIPESTATUS[0]}
echo "bench exit $status"
# Issue 14: linear_cross_entropy at N=8192 D=4096 V=128256 bf16 vs torch (and Liger-Kernel if installed).
# Each variant (the Triton row kernel among them) is compared with torch before it is timed.
timeout "${LCE_TIMEOUT:-300}" "$PY" benchmarks/gpu/bench_lce_gpu.py --out "$OUT" "$@" 2>&1 | tee "$OUT/bench_lce.log"
echo "bench_lce exit ${PIPESTATUS[0]}"
if [ "$DEVICE" = cuda ]; then  # the Triton cross-entropy's block size and warps, and its size gate
    timeout "${SWEEP_TIMEOUT:-100}" "$PY" benchmarks/gpu/sweep_triton_ce.py --out "$OUT" 2>&1 | tee "$OUT/sweep.log"
    timeout "${CROSSOVER_TIMEOUT:-100}" "$PY" benchmarks/gpu/ce_crossover.py --out "$OUT" 2>&1 | tee "$OUT/crossover.log"
fi
exit "$status"
