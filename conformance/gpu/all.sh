#!/usr/bin/env bash
# The whole GPU run in one go, within about eight minutes: the conformance matrix on CuPy and on
# torch with CUDA (every loss, the plugins' too, in float16, bfloat16, float32 and float64), the
# mixed-library and kernel checks, sync-free and CUDA-graph training steps, jax_jit on the GPU
# (conformance/gpu/run.sh, its steps side by side), then the benchmarks alone on the GPU
# (benchmarks/gpu/run.sh). Every result goes into one archive, $OUT/gpu-results.tgz, packed again
# after each part so that a run stopped at its time limit still returns what it finished.
#
#   bash conformance/gpu/all.sh --prepare   # here, with a network: lossreg, its two plugins and
#                                           # what the GPU machine lacks, as wheels in .whl/
#   run(command="bash conformance/gpu/all.sh", carry=[".whl"], timeout_s=560)   # the device tool
#   DRY=1 bash conformance/gpu/all.sh       # the same on this machine's CPU, small sizes
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY="${PYTHON:-python3}"
if [ "${1:-}" = "--prepare" ]; then
    set -e
    rm -rf .whl build && mkdir .whl
    # The wheels, not the checkout: installed, lossreg carries its cases and the plugins their
    # entry points, so the run sees the catalogue a user's installation sees.
    "$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl . plugins/lossreg-extras plugins/lossreg-segmentation
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d .whl \
        "array-api-compat==$("$PY" -c 'import array_api_compat as m; print(m.__version__)')" \
        "array-api-extra==$("$PY" -c 'import array_api_extra as m; print(m.__version__)')" liger-kernel==0.8.5
    # pip wheel leaves egg-info in the plugins' src/: a test adding src/ to sys.path would see it as installed.
    rm -rf build plugins/*/build plugins/*/src/*.egg-info
    ls -l .whl
    exit 0
fi
OUT="${OUT:-$ROOT/conformance/results/gpu-run}"
mkdir -p "$OUT"
WORK=$(mktemp -d)
exec > >(tee "$OUT/log.txt") 2>&1
pack() { tar czf "$OUT/gpu-results.tgz" -C "$WORK" . ; }
if [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/lossreg-site .whl/*.whl || exit 3
    export PYTHONPATH=/tmp/lossreg-site
fi
# XLA takes 75 % of the GPU at its first use unless told not to: the steps share the GPU.
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
# The kernels that are off by default until they meet their speed target are checked and timed
# here too (a user's own setting is kept).
export LOSSREG_CE_TRITON=${LOSSREG_CE_TRITON:-1} LOSSREG_CUPY_KERNELS=${LOSSREG_CUPY_KERNELS:-1}
date -u
if [ "${DRY:-0}" = 1 ]; then
    export DEVICE=cpu MAX_CASES=${MAX_CASES:-3} DTYPES=${DTYPES:-float32,float64}
    BENCH=(--device cpu --dry-run)
else
    BENCH=()
fi
start=$SECONDS
STEP_TIMEOUT=${CONFORMANCE_TIMEOUT:-200} JOBS=${JOBS:-4} JAX=${JAX:-1} "$PY" conformance/gpu/run.py "$WORK/conformance"
echo "== conformance part: exit $? after $((SECONDS - start)) s"
pack
start=$SECONDS
OUT="$WORK/bench" BENCH_TIMEOUT=${BENCH_TIMEOUT:-190} LCE_TIMEOUT=${LCE_TIMEOUT:-90} \
    bash benchmarks/gpu/run.sh "${BENCH[@]}"
echo "== benchmark part: exit $? after $((SECONDS - start)) s"
pack
ls -R "$WORK" | head -40
