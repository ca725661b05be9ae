#!/usr/bin/env bash
# The GPU check of issue 13, for a lent GPU machine with nothing but this repository:
# Python 3.12 with torch + CUDA, numpy, h5py, typer, rich, matplotlib, onnx, onnxruntime;
# no network, so the package runs from the source tree (PYTHONPATH=.) and tests that need
# the project's shared data skip. Under 8 minutes: the CUDA tests (tests/test_cuda.py, ~2-3 min), then
# benchmarks/bench_gpu.py (training, evaluation and matmul-peak figures, ~1-2 min) with
# torch.compile and CUDA graphs (a few minutes of compilation; GPU_CHECK_COMPILE=0 skips).
# Every phase has its own time limit, so the script ends in time whatever happens.
#
#   bash benchmarks/gpu_check.sh 2>&1 | tee gpu_check.log
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
out="${GPU_CHECK_DIR:-${OUT:-/tmp}}"
mkdir -p "$out"
started=$(date +%s)
py="${PYTHON:-$(command -v python3 || command -v python)}"  # the GPU machine has python3 only

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
"$py" - <<'PY'
import torch
from rie_cli.devices import describe_device
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print(describe_device("cuda"))
print(describe_device("cpu"))
PY

echo "== CUDA tests (tests/test_cuda.py)"
timeout 240 "$py" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py
tests_rc=$?
echo "CUDA tests exit code: $tests_rc"

echo "== figures (benchmarks/bench_gpu.py)"
compile_flag=()
[ "${GPU_CHECK_COMPILE:-1}" = "1" ] && compile_flag=(--compile)
left=$(( 460 - ($(date +%s) - started) ))
timeout "$(( left > 60 ? left : 60 ))" "$py" benchmarks/bench_gpu.py --steps 20 "${compile_flag[@]}" \
  --json "$out/gpu_check.json"
bench_rc=$?
echo "bench exit code: $bench_rc; total $(( $(date +%s) - started )) s"
exit $(( tests_rc != 0 || bench_rc != 0 ))
