#!/usr/bin/env bash
# benchmarks/gpu_check.py on one CUDA device, stopped after 8 minutes; arguments are passed on
# (--dry-run: the same code path on the CPU with tiny sizes). Runs from a checkout without an
# installed mutualctr: src/ goes on the Python path; PYTHON names the interpreter (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 480 "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
