#!/usr/bin/env bash
# The GPU conformance run: CuPy and torch on CUDA, every loss and case, float16, bfloat16 (torch),
# float32 and float64; then mixed-library/device checks. Writes the matrix, the JSON report and
# the environment (date, versions, GPU name) to $OUT (or to the folder given, or to
# conformance/results/gpu-<date>). See run.py for the options (MAX_CASES, DTYPES, JAX=1).
#
# Through the device tool, from the repository root (conformance/gpu/site holds the pure-Python
# dependencies the GPU machine lacks; fill it with conformance/gpu/vendor.sh first):
#   run(command="bash conformance/gpu/run.sh", carry=["conformance/gpu/site"], timeout_s=540)
set -u
cd "$(dirname "$0")/../.."
exec "${PYTHON:-python3}" conformance/gpu/run.py "$@"
